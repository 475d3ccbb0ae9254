package decode

import (
	"encoding/binary"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// ipNext guesses IPv4 or IPv6 from the version nibble, for headers that do not say what follows.
func ipNext(data []byte) gopacket.LayerType {
	if len(data) == 0 {
		return gopacket.LayerTypePayload
	}
	switch data[0] >> 4 {
	case 4:
		return LayerTypeIPv4
	case 6:
		return LayerTypeIPv6
	}
	return gopacket.LayerTypePayload
}

// ipv6 decodes the fixed header and walks the extension headers to the upper-layer protocol,
// recording a fragment header if there is one.
type ipv6 struct {
	layers.BaseLayer
	NextHeader uint8 // first next header, as on the wire
	Proto      uint8 // upper-layer protocol after the extension headers
	HopLimit   uint8
	PayloadLen uint16
	HeaderLen  int
	Src, Dst   [16]byte
	Fragment   bool
	FragOffset uint16
	MoreFrags  bool
	FragID     uint32
	extCut     bool // the extension headers run past the packet: fixed header only
}

func (l *ipv6) LayerType() gopacket.LayerType  { return LayerTypeIPv6 }
func (l *ipv6) CanDecode() gopacket.LayerClass { return LayerTypeIPv6 }
func (l *ipv6) NextLayerType() gopacket.LayerType {
	if l.Fragment && l.FragOffset != 0 {
		return gopacket.LayerTypePayload
	}
	return protoNext(l.Proto)
}

func (l *ipv6) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 40 {
		return errTruncated
	}
	if data[0]>>4 != 6 {
		return errMalformed
	}
	l.PayloadLen = binary.BigEndian.Uint16(data[4:6])
	l.NextHeader = data[6]
	l.HopLimit = data[7]
	copy(l.Src[:], data[8:24])
	copy(l.Dst[:], data[24:40])
	l.Fragment, l.FragOffset, l.MoreFrags, l.FragID = false, 0, false, 0
	end := 40 + int(l.PayloadLen)
	if l.PayloadLen == 0 && l.NextHeader == 0 {
		end = len(data) // jumbogram: the length is in a hop-by-hop option; trust the capture
	}
	if end > len(data) {
		end = len(data)
	}
	next := l.NextHeader
	off := 40
	l.extCut = false
	cut := func() error {
		// tshark shows the fixed header of a packet whose extension headers are cut; so do we.
		l.extCut, l.Proto, l.HeaderLen = true, next, off
		l.BaseLayer = layers.BaseLayer{Contents: data[:off], Payload: nil}
		return nil
	}
	for walking := true; walking; {
		switch next {
		case 0, 43, 60, 139, 140: // hop-by-hop, routing, destination, HIP, shim6 (mobility ends, as in tshark)
			if end < off+2 {
				return cut()
			}
			n := 8 + int(data[off+1])*8
			if end < off+n {
				return cut()
			}
			next = data[off]
			off += n
		case 51: // authentication header: length in 4-octet units, minus 2
			if end < off+2 {
				return cut()
			}
			n := (int(data[off+1]) + 2) * 4
			if end < off+n {
				return cut()
			}
			next = data[off]
			off += n
		case 44:
			if end < off+8 {
				return cut()
			}
			fo := binary.BigEndian.Uint16(data[off+2 : off+4])
			l.Fragment = true
			l.FragOffset = fo &^ 7
			l.MoreFrags = fo&1 != 0
			l.FragID = binary.BigEndian.Uint32(data[off+4 : off+8])
			next = data[off]
			off += 8
		default:
			walking = false
		}
	}
	l.Proto = next
	l.HeaderLen = off
	l.BaseLayer = layers.BaseLayer{Contents: data[:off], Payload: data[off:end]}
	return nil
}

// protoNext maps an IP protocol number to the layer the decoder follows.
func protoNext(p uint8) gopacket.LayerType {
	switch p {
	case ProtoTCP:
		return layers.LayerTypeTCP
	case ProtoUDP:
		return layers.LayerTypeUDP
	case ProtoSCTP:
		return layers.LayerTypeSCTP
	case ProtoICMP:
		return layers.LayerTypeICMPv4
	case ProtoICMPv6:
		return layers.LayerTypeICMPv6
	case 4:
		return LayerTypeIPv4
	case 41:
		return LayerTypeIPv6
	case 47:
		return LayerTypeGRE
	case 51:
		return LayerTypeAH
	}
	return gopacket.LayerTypePayload
}

// ah is an IPsec authentication header after an IPv4 header (IPv6 walks it as an extension).
type ah struct {
	layers.BaseLayer
	Next uint8
}

func (l *ah) LayerType() gopacket.LayerType     { return LayerTypeAH }
func (l *ah) CanDecode() gopacket.LayerClass    { return LayerTypeAH }
func (l *ah) NextLayerType() gopacket.LayerType { return protoNext(l.Next) }
func (l *ah) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 2 {
		return errTruncated
	}
	n := (int(data[1]) + 2) * 4
	if len(data) < n {
		return errTruncated
	}
	l.Next = data[0]
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// ipv4 decodes an IPv4 header. Unlike gopacket's, it skips options without judging them, as
// tshark flags a bad option but still shows the addresses and what follows.
type ipv4 struct {
	layers.BaseLayer
	IHL        int
	Length     uint16
	ID         uint16
	Flags      uint8
	FragOffset uint16 // in 8-byte units
	TTL        uint8
	Protocol   uint8
	Src, Dst   [4]byte
}

func (l *ipv4) LayerType() gopacket.LayerType     { return LayerTypeIPv4 }
func (l *ipv4) CanDecode() gopacket.LayerClass    { return LayerTypeIPv4 }
func (l *ipv4) NextLayerType() gopacket.LayerType { return protoNext(l.Protocol) }
func (l *ipv4) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		return errTruncated
	}
	if data[0]>>4 != 4 {
		return errMalformed
	}
	l.IHL = int(data[0]&0x0f) * 4
	l.Length = binary.BigEndian.Uint16(data[2:4])
	if l.IHL < 20 || (l.Length != 0 && int(l.Length) < l.IHL) {
		return errMalformed // tshark too stops at a bogus header or total length
	}
	if len(data) < l.IHL {
		return errTruncated
	}
	l.ID = binary.BigEndian.Uint16(data[4:6])
	ff := binary.BigEndian.Uint16(data[6:8])
	l.Flags, l.FragOffset = uint8(ff>>13), ff&0x1fff
	l.TTL, l.Protocol = data[8], data[9]
	copy(l.Src[:], data[12:16])
	copy(l.Dst[:], data[16:20])
	end := len(data)
	if l.Length != 0 && int(l.Length) < end { // Ethernet padding after the datagram
		end = int(l.Length)
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:l.IHL], Payload: data[l.IHL:end]}
	return nil
}
