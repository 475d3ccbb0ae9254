package flow_test

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// udpFrame is an Ethernet/IPv4/UDP frame whose source address and port the benchmark rewrites, so each
// frame opens a flow of its own. Checksums are not rewritten: the decoder does not check them.
func udpFrame() []byte {
	f := make([]byte, 14+20+8+16)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[16:20], []byte{192, 0, 2, 1})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	return f
}

// BenchmarkActiveFlowMemory fills a table with 1,000,000 active flows (the default --flow-table-max)
// and reports the live heap per flow, which capfleet's performance aims keep at or under 300 B
// (hack/benchtool/aims.go).
//
//	go test -run '^$' -bench ActiveFlowMemory -benchtime 1x ./processor/flow
func BenchmarkActiveFlowMemory(b *testing.B) { activeFlowMemory(b, 0) }

// BenchmarkActiveFlowMemoryCIC is BenchmarkActiveFlowMemory with the CICFlowMeter features on: what
// a flow costs with them (hack/benchtool reports it beside the figure without).
func BenchmarkActiveFlowMemoryCIC(b *testing.B) { activeFlowMemory(b, flow.FeaturesCIC) }

func activeFlowMemory(b *testing.B, features flow.Features) {
	const flows = 1_000_000
	frame := udpFrame()
	d := decode.NewDecoder()
	var p decode.Packet
	start := time.Unix(1_700_000_000, 0)
	var perFlow float64
	for b.Loop() {
		before := liveHeap()
		t := flow.New(flow.Config{MaxFlows: flows, Features: features})
		for i := range flows {
			binary.BigEndian.PutUint32(frame[14+12:], 0x0a000000|uint32(i>>4))
			binary.BigEndian.PutUint16(frame[14+20:], uint16(1024+i&15))
			d.Decode(frame, decode.LinkTypeEthernet, start.Add(time.Duration(i)*time.Microsecond), len(frame), &p)
			t.Add(&p)
		}
		if t.Len() != flows {
			b.Fatalf("table holds %d flows, want %d (evicted %d)", t.Len(), flows, t.Stats.Ended[flow.EndEvicted])
		}
		perFlow = float64(liveHeap()-before) / flows
		runtime.KeepAlive(t)
	}
	b.ReportMetric(perFlow, "B/flow")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*flows), "ns/newflow")
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkTableAdd is one packet into a table of a real capture's flows (ndpi/ethereum.pcap, decoded
// beforehand, replayed in a loop), as processor/pipeline's BenchmarkFlowTableAdd; with
// BenchmarkTableAddCIC, the CICFlowMeter features' cost per packet. Neither may allocate per packet.
func BenchmarkTableAdd(b *testing.B) { tableAdd(b, 0) }

// BenchmarkTableAddCIC is BenchmarkTableAdd with the CICFlowMeter features on.
func BenchmarkTableAddCIC(b *testing.B) { tableAdd(b, flow.FeaturesCIC) }

func tableAdd(b *testing.B, features flow.Features) {
	frames := loadCapture(b, "ndpi/ethereum.pcap")
	d := decode.NewDecoder()
	pkts := make([]decode.Packet, len(frames))
	for i := range frames {
		d.Decode(frames[i].data, frames[i].pkt.LinkType, frames[i].pkt.Timestamp, frames[i].pkt.Length, &pkts[i])
	}
	t := flow.New(flow.Config{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20, Features: features})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t.Add(&pkts[i%len(pkts)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
