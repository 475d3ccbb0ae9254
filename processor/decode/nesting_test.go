package decode_test

import (
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// TestTransportPastMaxIPIsNotMixedIn: with more nested IP headers than a Packet keeps, the TCP
// header of the deepest one must not be recorded on the last one kept, which would pair that
// header's addresses with another's ports.
func TestTransportPastMaxIPIsNotMixedIn(t *testing.T) {
	const depth = decode.MaxIP + 1
	frame := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00} // Ethernet, IPv4
	for i := 0; i < depth; i++ {
		total := (depth-i)*20 + 20
		proto := byte(4) // IP in IP
		if i == depth-1 {
			proto = 6
		}
		frame = append(frame, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0, 0, 64, proto, 0, 0,
			10, 0, 0, byte(i+1), 10, 0, 1, byte(i+1))
	}
	frame = append(frame, 0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0)
	var p decode.Packet
	decode.NewDecoder().Decode(frame, decode.LinkTypeEthernet, time.Unix(0, 0), len(frame), &p)
	if int(p.NIP) != decode.MaxIP {
		t.Fatalf("%d IP headers kept, want %d", p.NIP, decode.MaxIP)
	}
	for i := 0; i < int(p.NIP); i++ {
		if h := p.IP[i]; h.L4.Proto == decode.ProtoTCP {
			t.Errorf("IP header %d (%v > %v) got the TCP ports %d > %d of a deeper one", i+1, h.Src, h.Dst, h.L4.SrcPort, h.L4.DstPort)
		}
	}
}
