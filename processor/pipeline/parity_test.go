package pipeline_test

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// The pipeline's checkpointable flow table and processor/flow (what `capfleet pcap flows` runs, checked
// against Zeek's conn.log) see the same flows in real captures: same endpoints, start and end, and the
// same packets, IP bytes and payload bytes each way, the same history, conn_state, Community ID and uid.
func TestFlowTableAgreesWithFlowPackage(t *testing.T) {
	for _, name := range []string{"ndpi/ethereum.pcap", "zeek/wikipedia.pcap", "zeek/http-qinq-0.pcap", "ndpi/synscan.pcap",
		"zeek/communityid/icmp.pcap", "zeek/communityid/icmp6.pcap", "zeek/communityid/sctp.pcap", "zeek/communityid/udp.pcap",
		"zeek/communityid/ipv6.pcap", "ndpi/6in4tunnel.pcap", "zeek/tunnels/gre-aruba.pcap", "zeek/q-in-q.pcap", "ndpi/443-chrome.pcap",
		"ndpi/bittorrent.pcap", "ndpi/dns_long_domainname.pcap"} {
		t.Run(name, func(t *testing.T) {
			frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, name))
			cfg := pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: 30 * time.Minute, MaxFlows: 1 << 20}
			if strings.HasPrefix(t.Name(), "TestFlowTableAgreesWithFlowPackageUnderPressure") {
				// Short timeouts and a small table: idle and active expiry and evictions all happen.
				cfg = pipeline.FlowConfig{IdleTimeout: 200 * time.Millisecond, ActiveTimeout: time.Second, MaxFlows: 8}
			}
			ours := map[string]string{}
			for _, f := range pipelinetest.ExpectedFlows(t, frames, cfg, "") {
				ours[flowKey(f.OrigAddr, f.OrigPort, f.RespAddr, f.RespPort, f.Proto, f.Start)] = counts(f.OrigPkts, f.RespPkts, f.OrigIPBytes, f.RespIPBytes, f.End) +
					fmt.Sprintf(" bytes %d/%d %s %s %s %s", f.OrigBytes, f.RespBytes, f.History, f.State, f.CommunityID, f.UID)
			}
			theirs := map[string]string{}
			tbl := flow.New(flow.Config{IdleTimeout: cfg.IdleTimeout, ActiveTimeout: cfg.ActiveTimeout, MaxFlows: cfg.MaxFlows,
				OnEnd: func(f *flow.Flow, _ flow.EndReason) {
					r := f.Record(0)
					theirs[flowKey(f.Key.Orig, f.OrigPort, f.Key.Resp, f.RespPort, f.Proto, f.First)] = counts(f.Orig.Pkts, f.Resp.Pkts, f.Orig.IPBytes, f.Resp.IPBytes, f.Last) +
						fmt.Sprintf(" bytes %d/%d %s %s %s %s", r.OrigBytes, r.RespBytes, r.History, r.ConnState, r.CommunityID, r.UID)
				}})
			dec := decode.NewDecoder()
			var p decode.Packet
			for _, f := range frames {
				dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &p)
				tbl.Add(&p)
			}
			tbl.Flush()
			var diffs []string
			for k, v := range theirs {
				if ours[k] != v {
					diffs = append(diffs, fmt.Sprintf("%s: flow package %s, pipeline %q", k, v, ours[k]))
				}
			}
			for k, v := range ours {
				if _, ok := theirs[k]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s: only in the pipeline (%s)", k, v))
				}
			}
			sort.Strings(diffs)
			if len(diffs) > 0 {
				t.Fatalf("%d of %d flows differ:\n%s", len(diffs), len(theirs), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
			}
			t.Logf("%d flows agree", len(theirs))
		})
	}
}

// The same with timeouts and a table bound that bite: flows split and evicted at the same places.
func TestFlowTableAgreesWithFlowPackageUnderPressure(t *testing.T) {
	TestFlowTableAgreesWithFlowPackage(t)
}

func flowKey(o netip.Addr, op uint16, r netip.Addr, rp uint16, proto uint8, start time.Time) string {
	return fmt.Sprintf("%s %s:%d>%s:%d @%d", store.ProtoName(proto), o.Unmap(), op, r.Unmap(), rp, start.UnixNano())
}

func counts(op, rp, oib, rib uint64, end time.Time) string {
	return fmt.Sprintf("pkts %d/%d ip_bytes %d/%d end %d", op, rp, oib, rib, end.UnixNano())
}
