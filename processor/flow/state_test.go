package flow_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// run feeds frames to t, decoding each.
func run(t *flow.Table, frames []frame) {
	d := decode.NewDecoder()
	var p decode.Packet
	for i := range frames {
		f := &frames[i]
		d.Decode(f.data, f.pkt.LinkType, f.pkt.Timestamp, f.pkt.Length, &p)
		t.Add(&p)
	}
}

func tsv(out *[]ended) []string {
	var lines []string
	for _, e := range *out {
		line := string(e.rec.AppendTSV(nil))
		if c := e.rec.CIC; c != nil {
			line += string(c.AppendCSV(nil))
		}
		lines = append(lines, line)
	}
	return lines
}

// A table restored from a state saved mid-capture saves the same state and ends the same flows,
// for the same reasons, with the same CIC features when it computes them, as the table it was
// saved from.
func TestRestoredTableCarriesOn(t *testing.T) {
	for _, features := range []flow.Features{0, flow.FeaturesCIC} {
		t.Run(map[flow.Features]string{0: "plain", flow.FeaturesCIC: "cic"}[features], func(t *testing.T) {
			restoredCarriesOn(t, features)
		})
	}
}

func restoredCarriesOn(t *testing.T, features flow.Features) {
	frames := loadCapture(t, "zeek/wikipedia.pcap")
	cfg := flow.Config{IdleTimeout: time.Second, MaxFlows: 8, Features: features}
	orig, origOut := newTable(cfg)
	run(orig, frames[:len(frames)/2])
	state := orig.AppendState(nil)
	if orig.Len() == 0 {
		t.Fatal("no flow open at the cut: the test proves nothing")
	}
	again, againOut := newTable(cfg)
	if err := again.RestoreState(state); err != nil {
		t.Fatal(err)
	}
	if resaved := again.AppendState(nil); !bytes.Equal(resaved, state) {
		t.Fatalf("restored table saves %d bytes that differ from the %d restored", len(resaved), len(state))
	}
	*origOut = (*origOut)[:0]
	for _, tab := range []*flow.Table{orig, again} {
		run(tab, frames[len(frames)/2:])
		tab.Flush()
	}
	if a, b := tsv(origOut), tsv(againOut); !slices.Equal(a, b) || len(a) == 0 {
		t.Fatalf("uninterrupted:\n%s\nrestored:\n%s", strings.Join(a, ""), strings.Join(b, ""))
	}
}

func TestRestoreRejectsOtherVersionsAndCutStates(t *testing.T) {
	for _, features := range []flow.Features{0, flow.FeaturesCIC} {
		rejectsOtherVersionsAndCutStates(t, features)
	}
}

func rejectsOtherVersionsAndCutStates(t *testing.T, features flow.Features) {
	tab, _ := newTable(flow.Config{Features: features})
	tab.Add(udp(0, "10.0.0.1", "2001:db8::1", 5000, 53, 30))
	tab.Add(udp(time.Second, "10.0.0.2", "10.0.0.1", 53, 5000, 100))
	state := tab.AppendState(nil)
	other := append([]byte{flow.StateVersionCIC + 1}, state[1:]...)
	if err := flow.New(flow.Config{}).RestoreState(other); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("another version: %v", err)
	}
	for n := range len(state) {
		fresh := flow.New(flow.Config{Features: features})
		if err := fresh.RestoreState(state[:n]); err == nil || fresh.Len() != 0 {
			t.Fatalf("state cut to %d of %d bytes: %v, %d flows", n, len(state), err, fresh.Len())
		}
	}
	if err := tab.RestoreState(state); err == nil {
		t.Error("restored into a table that holds flows")
	}
}

// Dirty reports each changed flow once, with its running totals, and nothing unchanged.
func TestDirtyReportsChangedFlowsOnce(t *testing.T) {
	tab, _ := newTable(flow.Config{})
	dirty := func() (pkts []uint64) {
		tab.Dirty(func(f *flow.Flow) { pkts = append(pkts, f.Orig.Pkts+f.Resp.Pkts) })
		return pkts
	}
	tab.Add(udp(0, "10.0.0.1", "10.0.0.9", 1, 53, 1))
	tab.Add(udp(1, "10.0.0.2", "10.0.0.9", 2, 53, 1))
	if got := dirty(); !slices.Equal(got, []uint64{1, 1}) {
		t.Fatalf("first call: %v", got)
	}
	if got := dirty(); len(got) != 0 {
		t.Fatalf("nothing changed, got %v", got)
	}
	tab.Add(udp(2, "10.0.0.9", "10.0.0.1", 53, 1, 1))
	if got := dirty(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("after one packet: %v", got)
	}
}

// A state with features restores into a table without them (which drops them), and a state without
// them into a table with them (whose open flows then start their features at their next packet).
func TestStateAcrossFeatureSettings(t *testing.T) {
	frames := loadCapture(t, "zeek/wikipedia.pcap")
	for _, c := range []struct{ saved, restored flow.Features }{{flow.FeaturesCIC, 0}, {0, flow.FeaturesCIC}} {
		tab, _ := newTable(flow.Config{IdleTimeout: time.Second, Features: c.saved})
		run(tab, frames[:len(frames)/2])
		again, out := newTable(flow.Config{IdleTimeout: time.Second, Features: c.restored})
		if err := again.RestoreState(tab.AppendState(nil)); err != nil {
			t.Fatalf("saved with %v, restored with %v: %v", c.saved, c.restored, err)
		}
		run(again, frames[len(frames)/2:])
		again.Flush()
		withCIC := 0
		for _, e := range *out {
			if e.rec.CIC != nil {
				withCIC++
			}
		}
		// Without features no flow has them; with them, the flows that saw a packet after the restore do
		// (a flow open at the save that saw none ends without: what it was is not known).
		if (withCIC > 0) != (c.restored != 0) {
			t.Fatalf("restored with features %v: %d of %d flows have CIC features", c.restored, withCIC, len(*out))
		}
	}
}
