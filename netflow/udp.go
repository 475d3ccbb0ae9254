package netflow

import (
	"encoding/binary"

	"capfleet.dev/capfleet/processor/decode"
)

// UDPPayload finds the payload of the innermost UDP datagram of a decoded frame: the bytes after the
// UDP header whose ports and length the decoder read. The decoder gives the header's fields but not
// its offset, so the header is looked for from the end of the frame back, which skips an Ethernet
// trailer or padding. ok is false for a frame without a whole UDP datagram (a fragment, a datagram
// cut by the snap length).
func UDPPayload(frame []byte, p *decode.Packet) (src *decode.IPHeader, payload []byte, ok bool) {
	h, ok := p.Inner()
	if !ok || h.Fragment || h.L4.Proto != decode.ProtoUDP || h.L4.UDPLen < 8 {
		return nil, nil, false
	}
	n := int(h.L4.UDPLen) - 8
	var want [6]byte
	binary.BigEndian.PutUint16(want[0:], h.L4.SrcPort)
	binary.BigEndian.PutUint16(want[2:], h.L4.DstPort)
	binary.BigEndian.PutUint16(want[4:], h.L4.UDPLen)
	for end := len(frame); end-n-8 >= 0; end-- {
		at := end - n
		if [6]byte(frame[at-8:at-2]) == want {
			return h, frame[at:end], true
		}
	}
	return nil, nil, false
}
