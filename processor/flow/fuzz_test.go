package flow_test

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// fuzzPackets turns bytes into TCP segments (and some UDP and tunnelled ones) between two
// hosts, 4 bytes each: direction and protocol, flags, a sequence step and a time step, so that
// the fuzzer drives Zeek's TCP states, letters and timers through orders no capture has.
func fuzzPackets(data []byte) []*decode.Packet {
	var out []*decode.Packet
	seq := [2]uint32{1000, 5000}
	at := time.Duration(0)
	for len(data) >= 4 {
		b0, flags, step, dt := data[0], data[1], data[2], data[3]
		data = data[4:]
		at += time.Duration(dt) * 100 * time.Millisecond
		dir := int(b0 & 1)
		src, dst, sport, dport := "10.0.0.1", "10.0.0.2", uint16(40000), uint16(80)
		if dir == 1 {
			src, dst, sport, dport = dst, src, dport, sport
		}
		var p *decode.Packet
		switch b0 >> 1 & 3 {
		case 1:
			p = udp(at, src, dst, sport, dport, int(step))
		case 2:
			p = vxlanPacket(at, "192.0.2.1", "192.0.2.2", 40000+uint16(b0>>3), src, dst, sport, dport)
		default:
			payload := int(step % 64)
			p = tcp(seg{at: at, src: src, dst: dst, sport: sport, dport: dport, flags: "", seq: seq[dir], ack: seq[1-dir],
				payload: payload, window: uint16(flags >> 6), badChecksum: b0&0x80 != 0})
			p.IP[0].L4.Flags = uint16(flags & 0x3f)
			if step&0x80 != 0 {
				seq[dir] -= uint32(step & 0x7f) // a retransmission, or a jump back
			} else {
				seq[dir] += uint32(payload)
			}
		}
		out = append(out, p)
	}
	return out
}

// FuzzTable: whatever the packets, the table does not panic, every flow it ends has counts that
// add up to the packets given (and finite CIC features), and a table saved and restored at any
// point carries on as the uninterrupted one.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 0x02, 0, 1, 1, 0x12, 0, 1, 0, 0x10, 0, 1, 0, 0x18, 20, 1, 1, 0x11, 0, 1, 0, 0x10, 0, 1})
	f.Add([]byte{0, 0x02, 0, 1, 1, 0x14, 0, 1, 0, 0x02, 5, 80, 2, 0, 10, 1, 3, 0, 10, 1})
	f.Add([]byte{1, 0x12, 0, 1, 0, 0x10, 0, 1, 0x80, 0x02, 0, 1, 0, 0x07, 0x81, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts := fuzzPackets(data)
		// Odd inputs run with the CIC features, whose state must carry on as the flows' does.
		var features flow.Features
		if len(data)%2 == 1 {
			features = flow.FeaturesCIC
		}
		run := func(cut int) ([]string, uint64) {
			var lines []string
			var counted uint64
			cfg := flow.Config{MaxFlows: 4, Features: features, OnEnd: func(fl *flow.Flow, why flow.EndReason) {
				r := fl.Record(why)
				counted += r.OrigPkts + r.RespPkts
				lines = append(lines, string(r.AppendTSV(nil)))
				if c := r.CIC; c != nil {
					for i, v := range c.V {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("CIC column %s is %v", flow.CICColumns[i], v)
						}
					}
					lines = append(lines, string(c.AppendCSV(nil)))
				}
			}}
			tab := flow.New(cfg)
			for i, p := range pkts {
				if i == cut {
					state := tab.AppendState(nil)
					again := flow.New(cfg)
					if err := again.RestoreState(state); err != nil {
						t.Fatalf("restoring the state saved after %d packets: %v", i, err)
					}
					if re := again.AppendState(nil); !bytes.Equal(re, state) {
						t.Fatalf("a restored table saves another state after %d packets", i)
					}
					tab = again
				}
				tab.Add(p)
			}
			tab.Flush()
			return lines, counted
		}
		whole, counted := run(-1)
		if counted > uint64(len(pkts))*2 { // a tunnelled packet counts in two flows
			t.Fatalf("%d packets counted of %d", counted, len(pkts))
		}
		if len(pkts) > 1 {
			if resumed, _ := run(len(pkts) / 2); !slices.Equal(resumed, whole) {
				t.Fatalf("resumed:\n%v\nuninterrupted:\n%v", resumed, whole)
			}
		}
	})
}
