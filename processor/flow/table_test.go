package flow_test

import (
	"net/netip"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

var t0 = time.Unix(1_700_000_000, 0)

// udp builds a decoded UDP packet; the table only reads the decoded fields.
func udp(at time.Duration, src, dst string, sport, dport uint16, payload int) *decode.Packet {
	p := &decode.Packet{Timestamp: t0.Add(at), NIP: 1}
	p.IP[0] = decode.IPHeader{
		Version: 4, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		NextHeader: decode.ProtoUDP, Proto: decode.ProtoUDP, TotalLen: 28 + payload, HeaderLen: 20,
		L4: decode.Transport{Proto: decode.ProtoUDP, SrcPort: sport, DstPort: dport, PayloadLen: payload, UDPLen: uint16(8 + payload)},
	}
	return p
}

type ended struct {
	rec flow.Record
	why flow.EndReason
}

func newTable(cfg flow.Config) (*flow.Table, *[]ended) {
	var out []ended
	cfg.OnEnd = func(f *flow.Flow, why flow.EndReason) { out = append(out, ended{f.Record(why), why}) }
	return flow.New(cfg), &out
}

func TestBothDirectionsOneFlow(t *testing.T) {
	tab, out := newTable(flow.Config{})
	tab.Add(udp(0, "10.0.0.1", "10.0.0.2", 5000, 53, 30))
	tab.Add(udp(time.Millisecond, "10.0.0.2", "10.0.0.1", 53, 5000, 100))
	tab.Add(udp(2*time.Millisecond, "10.0.0.1", "10.0.0.2", 5000, 53, 30))
	tab.Flush()
	if len(*out) != 1 {
		t.Fatalf("%d flows, want 1", len(*out))
	}
	r := (*out)[0].rec
	if r.OrigH != "10.0.0.1" || r.OrigP != 5000 || r.OrigPkts != 2 || r.RespPkts != 1 ||
		r.OrigBytes != 60 || r.RespBytes != 100 || r.OrigIPBytes != 116 || r.RespIPBytes != 128 ||
		r.ConnState != "SF" || r.History != "Dd" || (*out)[0].why != flow.EndFlushed {
		t.Errorf("record %+v", r)
	}
}

func TestIdleTimeoutSplitsFlow(t *testing.T) {
	tab, out := newTable(flow.Config{IdleTimeout: 10 * time.Second})
	tab.Add(udp(0, "10.0.0.1", "10.0.0.2", 5000, 53, 1))
	tab.Add(udp(9*time.Second, "10.0.0.1", "10.0.0.2", 5000, 53, 1))
	if len(*out) != 0 {
		t.Fatalf("flow ended after a 9 s gap with a 10 s idle timeout")
	}
	tab.Add(udp(19*time.Second, "10.0.0.1", "10.0.0.2", 5000, 53, 1)) // 10 s after the last packet
	if len(*out) != 1 || (*out)[0].why != flow.EndIdle || (*out)[0].rec.OrigPkts != 2 {
		t.Fatalf("after the idle gap: %+v", *out)
	}
	tab.Flush()
	if len(*out) != 2 || (*out)[1].rec.OrigPkts != 1 {
		t.Fatalf("after flush: %+v", *out)
	}
}

func TestActiveTimeoutEndsBusyFlow(t *testing.T) {
	tab, out := newTable(flow.Config{IdleTimeout: time.Minute, ActiveTimeout: 30 * time.Second})
	for s := 0; s <= 40; s += 5 {
		tab.Add(udp(time.Duration(s)*time.Second, "10.0.0.1", "10.0.0.2", 5000, 53, 1))
	}
	tab.Flush()
	if len(*out) != 2 || (*out)[0].why != flow.EndActive || (*out)[0].rec.OrigPkts != 6 || (*out)[1].rec.OrigPkts != 3 {
		t.Fatalf("got %+v", *out)
	}
	if tab.Stats.Ended[flow.EndActive] != 1 || tab.Stats.Ended[flow.EndFlushed] != 1 {
		t.Errorf("stats %+v", tab.Stats)
	}
}

func TestFullTableEvictsLeastRecentlyActive(t *testing.T) {
	tab, out := newTable(flow.Config{MaxFlows: 2})
	tab.Add(udp(0, "10.0.0.1", "10.0.0.9", 1, 53, 1))
	tab.Add(udp(1, "10.0.0.2", "10.0.0.9", 2, 53, 1))
	tab.Add(udp(2, "10.0.0.1", "10.0.0.9", 1, 53, 1)) // flow 1 is now the most recent
	tab.Add(udp(3, "10.0.0.3", "10.0.0.9", 3, 53, 1))
	if len(*out) != 1 || (*out)[0].why != flow.EndEvicted || (*out)[0].rec.OrigH != "10.0.0.2" {
		t.Fatalf("evicted %+v", *out)
	}
	if tab.Len() != 2 || tab.Stats.Ended[flow.EndEvicted] != 1 {
		t.Errorf("len %d stats %+v", tab.Len(), tab.Stats)
	}
}

func TestNonIPAndLaterFragmentsAreCounted(t *testing.T) {
	tab, out := newTable(flow.Config{})
	tab.Add(&decode.Packet{Timestamp: t0})
	frag := udp(0, "10.0.0.1", "10.0.0.2", 0, 0, 0)
	frag.IP[0].Fragment, frag.IP[0].FragOffset, frag.IP[0].L4 = true, 1480, decode.Transport{}
	tab.Add(frag)
	tab.Flush()
	if len(*out) != 0 || tab.Stats.NotIP != 1 || tab.Stats.Fragments != 1 {
		t.Errorf("flows %+v stats %+v", *out, tab.Stats)
	}
}
