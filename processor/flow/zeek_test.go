package flow_test

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// seg is a TCP segment for the tests: flags as tcpdump prints them (S, F, R, P, . for ACK).
type seg struct {
	at               time.Duration
	src, dst         string
	sport, dport     uint16
	flags            string
	seq, ack         uint32
	payload          int
	window           uint16
	badChecksum      bool
	notCapturedWhole bool
}

func tcp(s seg) *decode.Packet {
	var fl uint16
	for _, c := range s.flags {
		switch c {
		case 'S':
			fl |= decode.TCPSyn
		case 'F':
			fl |= decode.TCPFin
		case 'R':
			fl |= decode.TCPRst
		case 'P':
			fl |= decode.TCPPsh
		case '.':
			fl |= decode.TCPAck
		}
	}
	win := s.window
	if win == 0 {
		win = 1024
	}
	p := &decode.Packet{Timestamp: t0.Add(s.at), NIP: 1, CapLen: 100, Len: 100}
	p.IP[0] = decode.IPHeader{
		Version: 4, Src: netip.MustParseAddr(s.src), Dst: netip.MustParseAddr(s.dst),
		NextHeader: decode.ProtoTCP, Proto: decode.ProtoTCP, TotalLen: 40 + s.payload, HeaderLen: 20,
		L4: decode.Transport{Proto: decode.ProtoTCP, SrcPort: s.sport, DstPort: s.dport, Flags: fl, Seq: s.seq, Ack: s.ack,
			Window: win, PayloadLen: s.payload, BadChecksum: s.badChecksum},
	}
	return p
}

// conv is a client at 10.0.0.1:40000 talking to a server at 10.0.0.2:8443 (no service port).
type conv struct{ c, s uint32 } // next sequence numbers

func (v *conv) fromClient(at time.Duration, flags string, payload int) *decode.Packet {
	p := tcp(seg{at: at, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 8443, flags: flags, seq: v.c, ack: v.s, payload: payload})
	v.c += uint32(payload) + uint32(strings.Count(flags, "S")+strings.Count(flags, "F"))
	return p
}

func (v *conv) fromServer(at time.Duration, flags string, payload int) *decode.Packet {
	p := tcp(seg{at: at, src: "10.0.0.2", dst: "10.0.0.1", sport: 8443, dport: 40000, flags: flags, seq: v.s, ack: v.c, payload: payload})
	v.s += uint32(payload) + uint32(strings.Count(flags, "S")+strings.Count(flags, "F"))
	return p
}

func summary(e ended) string {
	r := e.rec
	return fmt.Sprintf("%s:%d>%s:%d %s %s %d/%d %s", r.OrigH, r.OrigP, r.RespH, r.RespP, r.ConnState, r.History, r.OrigPkts, r.RespPkts, e.why)
}

func summaries(out []ended) []string {
	var s []string
	for _, e := range out {
		s = append(s, summary(e))
	}
	return s
}

func expectFlows(t *testing.T, out []ended, want ...string) {
	t.Helper()
	if got := summaries(out); !slices.Equal(got, want) {
		t.Errorf("flows:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A normal close ends the connection Zeek's close delay after its last packet; a packet of the
// same 5-tuple after that starts a new one.
func TestCloseEndsConnectionAfterDelay(t *testing.T) {
	tab, out := newTable(flow.Config{})
	v := &conv{c: 1000, s: 5000}
	for _, p := range []*decode.Packet{
		v.fromClient(0, "S", 0), v.fromServer(10*time.Millisecond, "S.", 0), v.fromClient(20*time.Millisecond, ".", 0),
		v.fromClient(30*time.Millisecond, "P.", 100), v.fromServer(40*time.Millisecond, "P.", 200),
		v.fromClient(50*time.Millisecond, "F.", 0), v.fromServer(60*time.Millisecond, "F.", 0),
		v.fromClient(70*time.Millisecond, ".", 0), // the last ACK: still this connection
	} {
		tab.Add(p)
	}
	if len(*out) != 0 {
		t.Fatalf("ended before the close delay: %v", summaries(*out))
	}
	tab.Add(v.fromClient(6*time.Second, ".", 0)) // 5 s after the close: a new, partial connection
	tab.Flush()
	expectFlows(t, *out,
		"10.0.0.1:40000>10.0.0.2:8443 SF ShADdFf 5/3 closed",
		"10.0.0.1:40000>10.0.0.2:8443 OTH A 1/0 flushed")
}

// A RST from the responder closes the connection; packets within the delay still count in it,
// and a SYN after it starts a new one at once.
func TestResetThenReuse(t *testing.T) {
	tab, out := newTable(flow.Config{})
	v := &conv{c: 1000, s: 5000}
	for _, p := range []*decode.Packet{
		v.fromClient(0, "S", 0), v.fromServer(time.Millisecond, "S.", 0), v.fromClient(2*time.Millisecond, ".", 0),
		v.fromClient(3*time.Millisecond, "P.", 10), v.fromServer(4*time.Millisecond, "R.", 0),
		v.fromClient(time.Second, "P.", 10), // within the reset's delay: the same connection
	} {
		tab.Add(p)
	}
	v2 := &conv{c: 90000, s: 70000}
	tab.Add(v2.fromClient(2*time.Second, "S", 0)) // a new SYN on a closed connection: reuse
	tab.Add(v2.fromServer(2*time.Second+time.Millisecond, "R.", 0))
	tab.Flush()
	expectFlows(t, *out,
		"10.0.0.1:40000>10.0.0.2:8443 RSTR ShADr 4/2 reused",
		"10.0.0.1:40000>10.0.0.2:8443 REJ Sr 1/1 flushed")
}

// A SYN nobody answers ends Zeek's attempt delay after it; a retransmission (same sequence
// number) within it belongs to it, one after it starts a new attempt.
func TestUnansweredAttempt(t *testing.T) {
	tab, out := newTable(flow.Config{})
	syn := func(at time.Duration) *decode.Packet {
		return tcp(seg{at: at, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 8443, flags: "S", seq: 7})
	}
	for _, at := range []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second} {
		tab.Add(syn(at))
	}
	tab.Flush()
	expectFlows(t, *out,
		"10.0.0.1:40000>10.0.0.2:8443 S0 S 3/0 closed",
		"10.0.0.1:40000>10.0.0.2:8443 S0 S 1/0 flushed")
}

// Zeek's originator rules: a first packet from a service port makes its receiver the originator
// ('^'), and a connection that began with a SYN-ACK followed by an ACK is flipped as though at
// the SYN-ACK; a lone SYN-ACK from a port that is not a service's is left as it is.
func TestOriginatorRules(t *testing.T) {
	tab, out := newTable(flow.Config{})
	tab.Add(udp(0, "10.0.0.2", "10.0.0.1", 53, 40001, 100)) // a DNS answer first
	tab.Add(tcp(seg{at: time.Millisecond, src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40002, flags: "P.", seq: 1, ack: 1, payload: 10}))
	tab.Add(tcp(seg{at: 2 * time.Millisecond, src: "10.0.0.2", dst: "10.0.0.1", sport: 8443, dport: 40003, flags: "S.", seq: 1, ack: 1}))
	tab.Add(tcp(seg{at: 3 * time.Millisecond, src: "10.0.0.1", dst: "10.0.0.2", sport: 40003, dport: 8443, flags: ".", seq: 1, ack: 2}))
	tab.Add(tcp(seg{at: 4 * time.Millisecond, src: "10.0.0.2", dst: "10.0.0.1", sport: 8444, dport: 40004, flags: "S.", seq: 1, ack: 1}))
	tab.Flush()
	expectFlows(t, *out,
		"10.0.0.1:40001>10.0.0.2:53 SHR ^d 0/1 flushed",
		"10.0.0.1:40002>10.0.0.2:80 OTH ^d 0/1 flushed",
		"10.0.0.1:40003>10.0.0.2:8443 S1 ^hA 1/1 flushed",
		"10.0.0.2:8444>10.0.0.1:40004 OTH H 1/0 flushed")
}

// ICMP requests and replies of a type pair (echo, timestamp...) are one connection, messages
// without a counterpart one per direction.
func TestICMPPairs(t *testing.T) {
	icmp := func(at time.Duration, src, dst string, typ, code uint8) *decode.Packet {
		p := &decode.Packet{Timestamp: t0.Add(at), NIP: 1, CapLen: 98, Len: 98}
		p.IP[0] = decode.IPHeader{Version: 4, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			NextHeader: decode.ProtoICMP, Proto: decode.ProtoICMP, TotalLen: 84, HeaderLen: 20,
			L4: decode.Transport{Proto: decode.ProtoICMP, ICMPType: typ, ICMPCode: code}}
		return p
	}
	tab, out := newTable(flow.Config{})
	tab.Add(icmp(0, "10.0.0.1", "10.0.0.2", 8, 0))
	tab.Add(icmp(time.Millisecond, "10.0.0.2", "10.0.0.1", 0, 0))
	tab.Add(icmp(2*time.Millisecond, "10.0.0.2", "10.0.0.1", 3, 3))
	tab.Add(icmp(3*time.Millisecond, "10.0.0.1", "10.0.0.2", 3, 3))
	tab.Flush()
	expectFlows(t, *out,
		"10.0.0.1:8>10.0.0.2:0 OTH  1/1 flushed",
		"10.0.0.2:3>10.0.0.1:3 OTH  1/0 flushed",
		"10.0.0.1:3>10.0.0.2:3 OTH  1/0 flushed")
}

// Zeek's inactivity timeouts: 5 min for an established TCP connection, 1 min for UDP.
func TestZeekInactivityTimeouts(t *testing.T) {
	tab, out := newTable(flow.Config{})
	v := &conv{c: 1, s: 1}
	tab.Add(v.fromClient(0, "S", 0))
	tab.Add(v.fromServer(time.Millisecond, "S.", 0))
	tab.Add(udp(0, "10.0.0.1", "10.0.0.3", 40000, 9999, 1))
	tab.Add(udp(2*time.Minute, "10.0.0.9", "10.0.0.3", 40000, 9999, 1)) // time passes
	if got := summaries(*out); len(got) != 1 || !strings.Contains(got[0], "10.0.0.3:9999 S0 D 1/0 idle") {
		t.Fatalf("after 2 min: %v", got)
	}
	tab.Add(v.fromClient(4*time.Minute, ".", 0)) // the TCP connection is still open
	tab.Add(udp(10*time.Minute, "10.0.0.9", "10.0.0.3", 40000, 9999, 1))
	expectFlows(t, (*out)[1:],
		"10.0.0.9:40000>10.0.0.3:9999 S0 D 1/0 idle",
		"10.0.0.1:40000>10.0.0.2:8443 S1 ShA 2/1 idle")
}

// Bad checksums, when the decoder checks them: the segment makes the connection but does not
// count, and leaves a 'C'.
func TestBadChecksum(t *testing.T) {
	tab, out := newTable(flow.Config{})
	tab.Add(tcp(seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 8443, flags: "S", seq: 7, badChecksum: true}))
	tab.Flush()
	expectFlows(t, *out, "10.0.0.1:40000>10.0.0.2:8443 OTH C 0/0 flushed")
}

// vxlanPacket is a UDP datagram from inner src to dst carried in VXLAN between two tunnel
// endpoints.
func vxlanPacket(at time.Duration, outerSrc, outerDst string, sport uint16, src, dst string, isport, idport uint16) *decode.Packet {
	p := &decode.Packet{Timestamp: t0.Add(at), NIP: 2, CapLen: 128, Len: 128, Tunnel: decode.TunnelVXLAN}
	p.IP[0] = decode.IPHeader{Version: 4, Src: netip.MustParseAddr(outerSrc), Dst: netip.MustParseAddr(outerDst),
		NextHeader: decode.ProtoUDP, Proto: decode.ProtoUDP, TotalLen: 114, HeaderLen: 20,
		L4: decode.Transport{Proto: decode.ProtoUDP, SrcPort: sport, DstPort: 4789, UDPLen: 94, PayloadLen: 86}}
	p.IP[1] = udp(at, src, dst, isport, idport, 36).IP[0]
	return p
}

// A tunnel carried in UDP is a connection of its own; the inner flow records it, and changes
// of tunnel past Zeek's limit leave an 'X'.
func TestTunnelledFlows(t *testing.T) {
	tab, out := newTable(flow.Config{})
	for i := range 8 {
		// Two tunnel connections, one per direction: every packet changes the inner flow's tunnel.
		if i%2 == 0 {
			tab.Add(vxlanPacket(time.Duration(i)*time.Millisecond, "192.0.2.1", "192.0.2.2", 40000, "10.0.0.1", "10.0.0.2", 5000, 7000))
		} else {
			tab.Add(vxlanPacket(time.Duration(i)*time.Millisecond, "192.0.2.2", "192.0.2.1", 40001, "10.0.0.2", "10.0.0.1", 7000, 5000))
		}
	}
	var inner *flow.Record
	tab.Flush()
	for i := range *out {
		if r := &(*out)[i].rec; r.OrigH == "10.0.0.1" {
			inner = r
		}
	}
	if len(*out) != 3 || inner == nil {
		t.Fatalf("flows %v", summaries(*out))
	}
	if inner.History != "DdX" || inner.OrigPkts != 4 || inner.RespPkts != 4 || inner.Tunnel == nil ||
		inner.Tunnel.Type != "vxlan" || inner.Tunnel.Src != "192.0.2.1" || inner.Tunnel.DstPort != 4789 || inner.Tunnel.Changes != 7 {
		t.Errorf("inner flow %+v, tunnel %+v", *inner, inner.Tunnel)
	}
	if inner.CommunityID != flow.CommunityID(0, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 5000, 7000, 17) {
		t.Errorf("community id %s is not the inner 5-tuple's", inner.CommunityID)
	}
}

// A checkpoint written by the table before Zeek's tracking (state version 5) restores, and its
// flows end as that table would have ended them.
func TestRestoresVersion5State(t *testing.T) {
	state, err := os.ReadFile("testdata/state-v5.bin")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/state-v5.flows")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tab := flow.New(flow.Config{OnEnd: func(f *flow.Flow, why flow.EndReason) {
		r := f.Record(why)
		got = append(got, fmt.Sprintf("%s %s %d %s %d %d/%d %d/%d %s %s", r.Proto, r.OrigH, r.OrigP, r.RespH, r.RespP,
			r.OrigPkts, r.RespPkts, r.OrigIPBytes, r.RespIPBytes, r.History, r.ConnState))
	}})
	if err := tab.RestoreState(state); err != nil {
		t.Fatal(err)
	}
	tab.Flush()
	if w := strings.Split(strings.TrimSpace(string(want)), "\n"); !slices.Equal(sorted(got), sorted(w)) {
		t.Errorf("restored flows:\n%s\nwant:\n%s", strings.Join(sorted(got), "\n"), strings.Join(sorted(w), "\n"))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Adding packets of open flows allocates nothing: the hot path of `capfleet process`.
func TestAddDoesNotAllocate(t *testing.T) {
	tab := flow.New(flow.Config{})
	v := &conv{c: 1, s: 1}
	pkts := []*decode.Packet{
		v.fromClient(0, "S", 0), v.fromServer(time.Millisecond, "S.", 0), v.fromClient(2*time.Millisecond, ".", 0),
		udp(3*time.Millisecond, "10.0.0.1", "10.0.0.3", 40000, 9999, 1),
		vxlanPacket(4*time.Millisecond, "192.0.2.1", "192.0.2.2", 40000, "10.0.0.1", "10.0.0.2", 5000, 7000),
	}
	for _, p := range pkts {
		tab.Add(p)
	}
	data := v.fromClient(5*time.Millisecond, "P.", 100)
	at := 5 * time.Millisecond
	allocs := testing.AllocsPerRun(1000, func() {
		at += time.Millisecond
		data.Timestamp = t0.Add(at)
		data.IP[0].L4.Seq += 100
		tab.Add(data)
		pkts[3].Timestamp = t0.Add(at)
		tab.Add(pkts[3])
		pkts[4].Timestamp = t0.Add(at)
		tab.Add(pkts[4])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per round of packets", allocs)
	}
}
