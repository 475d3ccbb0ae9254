package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// Cutting a run anywhere, checkpointing the table and resuming from the checkpoint gives the flows of
// an uninterrupted run: what makes a restarted pipeline split no flow. The captures mix TCP (history,
// sequence tracking, flipped roles), UDP, ICMP, IPv6 and VLAN tags.
func TestFlowTableResumesFromItsStateAnywhere(t *testing.T) {
	for _, name := range []string{"ndpi/ethereum.pcap", "zeek/wikipedia.pcap", "zeek/communityid/icmp.pcap",
		"zeek/communityid/ipv6.pcap", "zeek/q-in-q.pcap", "ndpi/synscan.pcap"} {
		t.Run(name, func(t *testing.T) {
			frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, name))
			for _, cfg := range []pipeline.FlowConfig{
				{ActiveTimeout: time.Minute, MaxFlows: 1000}, // Zeek's timeouts
				{IdleTimeout: 5 * time.Second, ActiveTimeout: time.Minute, MaxFlows: 1000},
				// Evictions: resuming must restore which flow is least recently active.
				{IdleTimeout: 200 * time.Millisecond, ActiveTimeout: time.Second, MaxFlows: 8},
			} {
				resumeAnywhere(t, frames, cfg)
			}
		})
	}
}

func resumeAnywhere(t *testing.T, frames []pipelinetest.Frame, cfg pipeline.FlowConfig) {
	t.Helper()
	want := pipelinetest.ExpectedFlows(t, frames, cfg, "")
	if len(want) == 0 {
		t.Fatal("no flows: the capture does not exercise the table")
	}
	resumedOpen := false
	for _, cut := range []int{1, 137, len(frames) / 2, len(frames) - 1} {
		if cut >= len(frames) {
			continue
		}
		var got []store.Flow
		emit := func(f store.Flow) { got = append(got, f) }
		newTable := pipeline.NewFlowTableFactory(cfg, nil)
		dec := decode.NewDecoder()
		var p decode.Packet
		tbl, err := newTable(nil, emit)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			if i == cut {
				state, err := tbl.MarshalState()
				if err != nil {
					t.Fatal(err)
				}
				if tbl, err = newTable(state, emit); err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				resumedOpen = resumedOpen || tbl.Len() > 0
			}
			dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &p)
			tbl.Add(&p)
			tbl.Expire(f.Meta.Timestamp)
		}
		got = append(got, tbl.Dirty()...)
		pipelinetest.SortFlows(got)
		if d := pipelinetest.DiffFlows(got, want); d != "" {
			t.Fatalf("cut at %d:\n%s", cut, d)
		}
	}
	if !resumedOpen {
		t.Fatal("no flow open at any cut: the checkpoint was never exercised")
	}
}

// A corrupt checkpoint is an error, not a panic or an empty table passed off as a resumed one.
func TestFlowTableRejectsABadState(t *testing.T) {
	newTable := pipeline.NewFlowTableFactory(pipeline.FlowConfig{IdleTimeout: time.Second, ActiveTimeout: time.Minute, MaxFlows: 10}, nil)
	for _, bad := range [][]byte{{}, []byte("{}"), {0xff, 0x00, 0x13}} {
		if _, err := newTable(bad, func(store.Flow) {}); err == nil {
			t.Errorf("state %x accepted", bad)
		}
	}
}

// A checkpoint cut anywhere (a torn read) is an error, never a panic or a silently smaller table.
func TestFlowTableRejectsATruncatedState(t *testing.T) {
	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "zeek/wikipedia.pcap"))
	newTable := pipeline.NewFlowTableFactory(pipeline.FlowConfig{IdleTimeout: time.Hour, ActiveTimeout: time.Hour, MaxFlows: 1000}, nil)
	tbl, _ := newTable(nil, func(store.Flow) {})
	dec := decode.NewDecoder()
	var p decode.Packet
	for _, f := range frames {
		dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &p)
		tbl.Add(&p)
	}
	state, err := tbl.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(state) {
		if _, err := newTable(state[:n], func(store.Flow) {}); err == nil {
			t.Fatalf("state cut to %d of %d bytes accepted", n, len(state))
		}
	}
	again, err := newTable(state, func(store.Flow) {})
	if err != nil || again.Len() != tbl.Len() {
		t.Fatalf("whole state: %v, %d flows, want %d", err, again.Len(), tbl.Len())
	}
}

func TestNewRejectsIncoherentSettings(t *testing.T) {
	for _, tc := range []struct {
		cfg  pipeline.Config
		want string
	}{
		{pipeline.Config{Group: "g"}, "--topic"},
		{pipeline.Config{Topic: "t"}, "--group"},
		{pipeline.Config{Topic: "t", Group: "g", StorePackets: true}, "--sensor"},
		{pipeline.Config{Topic: "t", Group: "g", FlowsTopic: "f"}, "--store-flows"},
		{pipeline.Config{Topic: "t", Group: "g", StoreFlows: true}, "Cassandra"},
	} {
		if _, err := pipeline.New(tc.cfg, pipeline.Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	bad := []pipeline.FlowConfig{{IdleTimeout: -time.Second, ActiveTimeout: time.Second, MaxFlows: 1}, {IdleTimeout: time.Second, MaxFlows: 1}, {IdleTimeout: time.Second, ActiveTimeout: time.Second}}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
