package decode

import (
	"encoding/binary"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// gre is a GRE version 0 header (RFC 2784/2890); version 1 (PPTP) carries PPP and ends decoding.
type gre struct {
	layers.BaseLayer
	Proto   uint16
	Version uint8
	pppNext gopacket.LayerType // for version 1: what the PPP frame carries
	seq     bool
	erspan  *erspan // told which ERSPAN version follows
	cmd     *cmd    // told that its header has the GRE layout
}

func (l *gre) LayerType() gopacket.LayerType  { return LayerTypeGRE }
func (l *gre) CanDecode() gopacket.LayerClass { return LayerTypeGRE }
func (l *gre) NextLayerType() gopacket.LayerType {
	if l.Version == 1 {
		return l.pppNext
	}
	if l.Version != 0 {
		return gopacket.LayerTypePayload
	}
	switch l.Proto {
	case 0x88be:
		if !l.seq { // ERSPAN type I: no ERSPAN header, the mirrored frame follows GRE directly
			return layers.LayerTypeEthernet
		}
		l.erspan.version = 2
		return LayerTypeERSPAN
	case 0x22eb:
		l.erspan.version = 3
		return LayerTypeERSPAN
	case 0x8909:
		l.cmd.inGRE = true
	}
	if arubaGRE(l.Proto) {
		return LayerTypeDot11
	}
	return etherNext(l.Proto)
}
func (l *gre) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		return errTruncated
	}
	flags := data[0]
	l.Version = data[1] & 7
	l.Proto = binary.BigEndian.Uint16(data[2:4])
	if l.Version == 1 {
		return l.decodeEnhanced(data)
	}
	n := 4
	if flags&0xc0 != 0 { // checksum or routing present: checksum + offset
		n += 4
	}
	if flags&0x20 != 0 { // key
		n += 4
	}
	l.seq = flags&0x10 != 0
	if l.seq { // sequence number
		n += 4
	}
	if len(data) < n {
		return errTruncated
	}
	if flags&0x40 != 0 { // source routing entries until a null one
		for {
			if len(data) < n+4 {
				return errTruncated
			}
			af := binary.BigEndian.Uint16(data[n:])
			sl := int(data[n+3])
			n += 4 + sl
			if len(data) < n {
				return errTruncated
			}
			if af == 0 && sl == 0 {
				break
			}
		}
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// erspan is an ERSPAN type II (8 bytes) or type III (12 bytes, 20 with the platform-specific
// subheader) header in front of a mirrored Ethernet frame, or for type III whatever its frame
// type says (0 Ethernet, 2 IP; tshark dissects no other).
type erspan struct {
	layers.BaseLayer
	version int
	next    gopacket.LayerType
}

func (l *erspan) LayerType() gopacket.LayerType     { return LayerTypeERSPAN }
func (l *erspan) CanDecode() gopacket.LayerClass    { return LayerTypeERSPAN }
func (l *erspan) NextLayerType() gopacket.LayerType { return l.next }
func (l *erspan) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	n := 8
	if l.version == 3 {
		n = 12
		if len(data) >= 12 && data[11]&1 != 0 {
			n = 20
		}
	}
	if len(data) < n {
		return errTruncated
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	l.next = layers.LayerTypeEthernet
	if l.version == 3 {
		switch (binary.BigEndian.Uint16(data[10:]) >> 10) & 0x1f {
		case 0:
		case 2:
			l.next = ipNext(l.Payload)
		default:
			l.next = gopacket.LayerTypePayload
		}
	}
	return nil
}

// teredo skips the optional authentication and origin indication headers of RFC 4380 in front
// of an IPv6 packet carried in UDP port 3544.
type teredo struct {
	layers.BaseLayer
	isIPv6 bool
}

func (l *teredo) LayerType() gopacket.LayerType  { return LayerTypeTeredo }
func (l *teredo) CanDecode() gopacket.LayerClass { return LayerTypeTeredo }
func (l *teredo) NextLayerType() gopacket.LayerType {
	if l.isIPv6 {
		return LayerTypeIPv6
	}
	return gopacket.LayerTypePayload
}
func (l *teredo) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	off := 0
	if len(data) >= 2 && data[0] == 0 && data[1] == 1 { // authentication
		if len(data) < 4 {
			return errTruncated
		}
		off = 4 + int(data[2]) + int(data[3]) + 8 + 1
	}
	if len(data) >= off+2 && data[off] == 0 && data[off+1] == 0 { // origin indication
		off += 8
	}
	if len(data) < off {
		return errTruncated
	}
	l.isIPv6 = len(data) >= off+40 && data[off]>>4 == 6
	l.BaseLayer = layers.BaseLayer{Contents: data[:off], Payload: data[off:]}
	return nil
}

// gtpu is a GTP-U header (3GPP TS 29.281) with its optional fields and extension headers; a
// G-PDU carries a user IP packet.
type gtpu struct {
	layers.BaseLayer
	next gopacket.LayerType
}

func (l *gtpu) LayerType() gopacket.LayerType     { return LayerTypeGTPU }
func (l *gtpu) CanDecode() gopacket.LayerClass    { return LayerTypeGTPU }
func (l *gtpu) NextLayerType() gopacket.LayerType { return l.next }
func (l *gtpu) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		return errTruncated
	}
	flags := data[0]
	if flags>>5 != 1 {
		return errMalformed
	}
	n := 8
	if flags&0x07 != 0 { // sequence number, N-PDU number or extension header present
		if len(data) < 12 {
			return errTruncated
		}
		n = 12
		for ext := data[11]; flags&0x04 != 0 && ext != 0; {
			if len(data) < n+1 {
				return errTruncated
			}
			el := int(data[n]) * 4
			if el == 0 || len(data) < n+el {
				return errTruncated
			}
			ext = data[n+el-1]
			n += el
		}
	}
	l.next = gopacket.LayerTypePayload
	if data[1] == 0xff {
		l.next = ipNext(data[n:])
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// geneve is a Geneve header (RFC 8926) with its options.
type geneve struct {
	layers.BaseLayer
	Proto uint16
}

func (l *geneve) LayerType() gopacket.LayerType     { return LayerTypeGeneve }
func (l *geneve) CanDecode() gopacket.LayerClass    { return LayerTypeGeneve }
func (l *geneve) NextLayerType() gopacket.LayerType { return etherNext(l.Proto) }
func (l *geneve) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		return errTruncated
	}
	n := 8 + int(data[0]&0x3f)*4
	if len(data) < n {
		return errTruncated
	}
	l.Proto = binary.BigEndian.Uint16(data[2:4])
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// decodeEnhanced reads the enhanced GRE header of PPTP (RFC 2637) and the PPP header inside it.
func (l *gre) decodeEnhanced(data []byte) error {
	n := 8
	if data[0]&0x10 != 0 { // sequence number
		n += 4
	}
	if data[1]&0x80 != 0 { // acknowledgment number
		n += 4
	}
	if len(data) < n {
		return errTruncated
	}
	l.pppNext = gopacket.LayerTypePayload
	ppp := data[n:]
	if l.Proto == 0x880b && len(ppp) > 0 {
		if len(ppp) >= 2 && ppp[0] == 0xff && ppp[1] == 0x03 { // address and control fields
			ppp, n = ppp[2:], n+2
		}
		var proto uint16
		switch {
		case len(ppp) >= 1 && ppp[0]&1 == 1: // compressed one-byte protocol field
			proto, n = uint16(ppp[0]), n+1
		case len(ppp) >= 2:
			proto, n = binary.BigEndian.Uint16(ppp), n+2
		}
		l.pppNext = pppNext(proto)
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// ayiya is an "Anything In Anything" tunnel header (UDP 5072): identity and signature of
// announced sizes, then the packet its next-header field names.
type ayiya struct {
	layers.BaseLayer
	Next uint8
}

func (l *ayiya) LayerType() gopacket.LayerType  { return LayerTypeAYIYA }
func (l *ayiya) CanDecode() gopacket.LayerClass { return LayerTypeAYIYA }
func (l *ayiya) NextLayerType() gopacket.LayerType {
	switch l.Next {
	case 4, 41:
		return protoNext(l.Next)
	}
	return gopacket.LayerTypePayload
}
func (l *ayiya) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		return errTruncated
	}
	n := 8 + 1<<(data[0]>>4) + int(data[1]>>4)*4
	if data[0]>>4 == 0 {
		n-- // identity length 0 means none, not 2^0 bytes
	}
	if len(data) < n {
		return errTruncated
	}
	l.Next = data[3]
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}
