package decode_test

import (
	"path/filepath"
	"testing"

	"capfleet.dev/capfleet/processor/decode"

	"capfleet.dev/capfleet/internal/testenv"
)

// benchCapture is a real capture with many flows and protocols (TCP, UDP, DNS, ICMP).
const benchCapture = "zeek/echo-connections.pcap"

func loadBench(b testing.TB) []frame {
	frames := readFrames(b, filepath.Join(testenv.Pcaps(b), benchCapture), 0)
	if len(frames) == 0 {
		b.Fatalf("no packets in %s", benchCapture)
	}
	return frames
}

// BenchmarkDecode decodes every packet of a real capture per iteration; the per-packet time is
// reported as ns/pkt and allocs/op must stay 0.
func BenchmarkDecode(b *testing.B) {
	frames := loadBench(b)
	d := decode.NewDecoder()
	var p decode.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range frames {
			f := &frames[i]
			d.Decode(f.data, decode.LinkType(f.linkType), f.pkt.Timestamp, f.pkt.Length, &p)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/pkt")
}

// BenchmarkAppendTSV decodes every packet of a real capture and formats the default fields as a
// `pcap decode` line, as the command does; allocs/op must stay 0.
func BenchmarkAppendTSV(b *testing.B) {
	frames := loadBench(b)
	fs, err := decode.LookupFields(decode.DefaultFields)
	if err != nil {
		b.Fatal(err)
	}
	d := decode.NewDecoder()
	var p decode.Packet
	line := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range frames {
			f := &frames[i]
			d.Decode(f.data, decode.LinkType(f.linkType), f.pkt.Timestamp, f.pkt.Length, &p)
			line = decode.AppendTSV(line[:0], fs, i+1, &p)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/pkt")
}

// TestDecodeDoesNotAllocate holds the decoder to zero allocations per packet on captures that
// exercise VLAN, Q-in-Q, MPLS, IPv6 extension headers, tunnels, DNS and ICMP errors.
func TestDecodeDoesNotAllocate(t *testing.T) {
	root := testenv.Pcaps(t)
	var frames []frame
	for _, f := range []string{
		benchCapture, "zeek/wikipedia.pcap", "zeek/q-in-q.pcap", "zeek/mpls-in-vlan.pcap",
		"zeek/tunnels/gre-sample.pcap", "zeek/tunnels/Teredo.pcap", "zeek/tunnels/vxlan.pcap",
		"zeek/ipv6-hbh-routing0.pcap", "zeek/icmp/icmp-destunreach-udp.pcap", "zeek/ipv6-fragmented-dns.pcap",
		"zeek/icmp/icmp6-destunreach-ip6ext-udp.pcap", "zeek/mixed-vlan-mpls.pcap", "zeek/tunnels/6in4.pcap",
		// link types passed over to the IP inside, and 802.11 in Aruba's GRE
		"ndpi/BGP_Cisco_hdlc_slarp.pcap", "ndpi/BGP_redist.pcap", "tcpdump/nflog.pcap", "tcpdump/e1000g.pcap",
		"zeek/tunnels/gre-aruba.pcap", "tcpdump/arista_ether.pcap", "ndpi/anyconnect-vpn.pcap",
	} {
		fr := readFrames(t, filepath.Join(root, f), 2000)
		if len(fr) == 0 {
			t.Fatalf("no packets in %s", f)
		}
		frames = append(frames, fr...)
	}
	d := decode.NewDecoder()
	var p decode.Packet
	allocs := testing.AllocsPerRun(3, func() {
		for i := range frames {
			f := &frames[i]
			d.Decode(f.data, decode.LinkType(f.linkType), f.pkt.Timestamp, f.pkt.Length, &p)
		}
	})
	if allocs != 0 {
		t.Errorf("decoding %d packets allocated %.0f times", len(frames), allocs)
	}
	if d.Stats.ByReason[decode.OK] == 0 {
		t.Fatal("nothing decoded")
	}
}
