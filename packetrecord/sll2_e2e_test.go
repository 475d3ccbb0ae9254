package packetrecord_test

import (
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
)

// The path an SLL2 capture takes through capfleet: the capture-file reader,
// a packet record on Kafka, and the processor's decoder, which gets 276 and
// decodes the frame down to IP.
func TestSLL2FromFileThroughRecordToDecoder(t *testing.T) {
	r, err := pcapfile.Open(filepath.Join(testenv.Pcaps(t), "zeek", "linux_dlt_sll2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := decode.NewDecoder()
	var p decode.Packet
	// What tcpdump -r shows: two ICMP echoes, two ICMPv6, two ARP.
	want := []struct {
		reason decode.Reason
		src    string
	}{
		{decode.OK, "192.0.2.1"}, {decode.OK, "192.0.2.1"},
		{decode.OK, "fe80::8c36:6ff:fe44:acaf"}, {decode.OK, "fe80::8c36:6ff:fe44:acaf"},
		{decode.NotIP, ""}, {decode.NotIP, ""},
	}
	for n := 1; ; n++ {
		pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			if n-1 != len(want) {
				t.Fatalf("%d packets, want %d", n-1, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec := packetrecord.Encode(packetrecord.Meta{Timestamp: pkt.Timestamp, Node: "n", Interface: "any",
			LinkType: pkt.LinkType, OrigLen: pkt.Length}, pkt.Data)
		m, frame, err := packetrecord.Decode(rec)
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		if m.LinkType != linktype.LinuxSLL2 {
			t.Fatalf("packet %d: record link type %d, want 276", n, m.LinkType)
		}
		if n > len(want) {
			t.Fatalf("more than the %d packets tcpdump reads", len(want))
		}
		w := want[n-1]
		if reason := d.Decode(frame, m.LinkType, m.Timestamp, m.OrigLen, &p); reason != w.reason {
			t.Fatalf("packet %d: decoder says %v, want %v", n, reason, w.reason)
		}
		if ip, ok := p.Inner(); w.src != "" && (!ok || ip.Src != netip.MustParseAddr(w.src)) {
			t.Fatalf("packet %d: inner IP %+v, %v; want from %s", n, ip, ok, w.src)
		}
	}
}
