package decode

import (
	"encoding/binary"

	"capfleet.dev/capfleet/linktype"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// etherNext maps an EtherType to the layer the decoder follows; anything else ends decoding.
func etherNext(t uint16) gopacket.LayerType {
	switch t {
	case 0x0800:
		return LayerTypeIPv4
	case 0x86dd:
		return LayerTypeIPv6
	case 0x8100, 0x88a8, 0x9100:
		return layers.LayerTypeDot1Q
	case 0x8847, 0x8848:
		return LayerTypeMPLS
	case 0x6558:
		return layers.LayerTypeEthernet
	case 0x8864:
		return LayerTypePPPoE
	case 0x88e7:
		return LayerTypePBB
	case 0x8926:
		return LayerTypeVNTag
	case 0x8909:
		return LayerTypeCMD
	case 0xd28b:
		return LayerTypeArista
	}
	return gopacket.LayerTypePayload
}

// etherTyped is a header of fixed size with the EtherType of what follows at a fixed offset.
type etherTyped struct {
	layers.BaseLayer
	Type   uint16
	layer  gopacket.LayerType
	size   int
	typeAt int
}

// The link headers of that layout: Linux cooked capture v1 (16 bytes, the protocol last) and v2
// (20 bytes, the protocol first), and the Cisco VN-Tag (4 bytes and an EtherType).
func newSLL() etherTyped   { return etherTyped{layer: LayerTypeSLL, size: 16, typeAt: 14} }
func newSLL2() etherTyped  { return etherTyped{layer: LayerTypeSLL2, size: 20, typeAt: 0} }
func newVNTag() etherTyped { return etherTyped{layer: LayerTypeVNTag, size: 6, typeAt: 4} }

func (l *etherTyped) LayerType() gopacket.LayerType     { return l.layer }
func (l *etherTyped) CanDecode() gopacket.LayerClass    { return l.layer }
func (l *etherTyped) NextLayerType() gopacket.LayerType { return etherNext(l.Type) }
func (l *etherTyped) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < l.size {
		return errTruncated
	}
	l.Type = binary.BigEndian.Uint16(data[l.typeAt:])
	l.BaseLayer = layers.BaseLayer{Contents: data[:l.size], Payload: data[l.size:]}
	return nil
}

// loopback is the 4-byte address family of LINKTYPE_NULL (host byte order of the capturing
// machine, so both orders are tried) and LINKTYPE_LOOP (network order).
type loopback struct {
	layers.BaseLayer
	next gopacket.LayerType
}

func (l *loopback) LayerType() gopacket.LayerType     { return LayerTypeLoopback }
func (l *loopback) CanDecode() gopacket.LayerClass    { return LayerTypeLoopback }
func (l *loopback) NextLayerType() gopacket.LayerType { return l.next }
func (l *loopback) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		return errTruncated
	}
	fam := binary.LittleEndian.Uint32(data[:4])
	if fam > 0xffff {
		fam = binary.BigEndian.Uint32(data[:4])
	}
	switch fam {
	case 2: // AF_INET everywhere
		l.next = LayerTypeIPv4
	case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
		l.next = LayerTypeIPv6
	default:
		l.next = gopacket.LayerTypePayload
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:4], Payload: data[4:]}
	return nil
}

// mpls walks a whole MPLS label stack as one layer; the payload's version nibble picks IPv4 or
// IPv6 (the usual guess, as tshark and tcpdump make without configuration).
type mpls struct {
	layers.BaseLayer
	Labels     int
	FirstLabel uint32
	next       gopacket.LayerType
}

func (l *mpls) LayerType() gopacket.LayerType     { return LayerTypeMPLS }
func (l *mpls) CanDecode() gopacket.LayerClass    { return LayerTypeMPLS }
func (l *mpls) NextLayerType() gopacket.LayerType { return l.next }
func (l *mpls) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	l.Labels = 0
	off := 0
	for {
		if len(data) < off+4 {
			return errTruncated
		}
		v := binary.BigEndian.Uint32(data[off:])
		if l.Labels == 0 {
			l.FirstLabel = v >> 12
		}
		l.Labels++
		off += 4
		if v&0x100 != 0 {
			break
		}
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:off], Payload: data[off:]}
	l.next = ipNext(l.Payload)
	// A first nibble of 0 is a pseudowire control word; tshark's default takes an Ethernet frame
	// to follow it (Ethernet over MPLS).
	if len(l.Payload) >= 4+14 && l.Payload[0]>>4 == 0 {
		l.Payload, l.next = l.Payload[4:], layers.LayerTypeEthernet
	}
	return nil
}

// pppoe is a PPPoE session header (6 bytes) and the PPP protocol field after it.
type pppoe struct {
	layers.BaseLayer
	next gopacket.LayerType
}

func (l *pppoe) LayerType() gopacket.LayerType     { return LayerTypePPPoE }
func (l *pppoe) CanDecode() gopacket.LayerClass    { return LayerTypePPPoE }
func (l *pppoe) NextLayerType() gopacket.LayerType { return l.next }
func (l *pppoe) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		return errTruncated
	}
	end := 6 + int(binary.BigEndian.Uint16(data[4:6]))
	if end > len(data) {
		end = len(data)
	}
	l.next = pppNext(binary.BigEndian.Uint16(data[6:8]))
	if end < 8 {
		end = 8
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:8], Payload: data[8:end]}
	return nil
}

// pppNext maps a PPP protocol number to the layer the decoder follows.
func pppNext(proto uint16) gopacket.LayerType {
	switch proto {
	case 0x0021:
		return LayerTypeIPv4
	case 0x0057:
		return LayerTypeIPv6
	}
	return gopacket.LayerTypePayload
}

// pbb is an 802.1ah I-TAG (4 bytes) and the customer addresses and EtherType after it: tshark
// shows those as ieee8021ah fields, not as another Ethernet header, so they are passed over.
type pbb struct {
	layers.BaseLayer
	Type uint16
}

func (l *pbb) LayerType() gopacket.LayerType     { return LayerTypePBB }
func (l *pbb) CanDecode() gopacket.LayerClass    { return LayerTypePBB }
func (l *pbb) NextLayerType() gopacket.LayerType { return etherNext(l.Type) }
func (l *pbb) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 18 {
		return errTruncated
	}
	l.Type = binary.BigEndian.Uint16(data[16:])
	l.BaseLayer = layers.BaseLayer{Contents: data[:18], Payload: data[18:]}
	return nil
}

// cmd is Cisco MetaData (EtherType 0x8909, as TrustSec puts it on Ethernet or in GRE): version,
// length, option type and the security group tag, then the EtherType of what follows; inside GRE
// the EtherType comes first, as tshark reads it.
type cmd struct {
	etherTyped
	inGRE bool // set by the GRE layer for the header that follows it
}

func newCMD() cmd { return cmd{etherTyped: etherTyped{layer: LayerTypeCMD, size: 8, typeAt: 6}} }

func (l *cmd) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := l.etherTyped.DecodeFromBytes(data, df); err != nil {
		return err
	}
	if l.inGRE {
		l.Type, l.inGRE = binary.BigEndian.Uint16(data[0:2]), false
	}
	return nil
}

// stripLink passes over the link headers of the serial, FDDI and logging link types, which carry
// nothing the decoder records: it returns the layer after them and where it starts. A header cut
// short, or one carrying something other than IP, gives the payload type, which ends decoding.
func stripLink(lt LinkType, frame []byte) (gopacket.LayerType, []byte) {
	none := func() (gopacket.LayerType, []byte) { return gopacket.LayerTypePayload, nil }
	switch lt {
	case linktype.SLIP:
		// tcpdump's pseudo-header: direction and a copy of a compressed TCP/IP header.
		if len(frame) < 16 {
			return none()
		}
		return ipNext(frame[16:]), frame[16:]
	case linktype.PPP, linktype.PPPSerial:
		if len(frame) >= 1 && (frame[0] == 0x0f || frame[0] == 0x8f) {
			return ciscoHDLC(frame)
		}
		d := frame
		if len(d) >= 2 && d[0] == 0xff && d[1] == 0x03 { // address and control fields
			d = d[2:]
		}
		switch {
		case len(d) >= 1 && d[0]&1 == 1: // compressed one-byte protocol field
			return pppNext(uint16(d[0])), d[1:]
		case len(d) >= 2:
			return pppNext(be16(d)), d[2:]
		}
		return none()
	case linktype.CiscoHDLC:
		return ciscoHDLC(frame)
	case linktype.FDDI:
		// Frame control and two addresses, then 802.2 LLC.
		if len(frame) < 13 {
			return none()
		}
		return llcSNAP(frame[13:])
	case linktype.FrameRelay:
		return frameRelay(frame)
	case linktype.IPNet:
		if len(frame) < 24 {
			return none()
		}
		switch frame[1] {
		case 2:
			return LayerTypeIPv4, frame[24:]
		case 26:
			return LayerTypeIPv6, frame[24:]
		}
		return none()
	case linktype.NFLOG:
		return nflog(frame)
	case linktype.ARCNETLinux:
		// Source, destination, offset, then the protocol ID: RFC 1051's IP has no more header,
		// RFC 1201's has a split flag and a sequence number.
		if len(frame) < 5 {
			return none()
		}
		switch frame[4] {
		case 0xf0:
			return LayerTypeIPv4, frame[5:]
		case 0xd4:
			if len(frame) < 8 {
				return none()
			}
			return LayerTypeIPv4, frame[8:]
		}
		return none()
	case linktype.IPoIB:
		if len(frame) < 44 {
			return none()
		}
		return etherNext(be16(frame[40:])), frame[44:]
	}
	return none()
}

// pktap is Apple's packet tap header: its length and the link type of the frame after it, both
// in little-endian order. ok is false when the header is cut or names itself again.
func pktap(frame []byte) (lt LinkType, inner []byte, ok bool) {
	if len(frame) < 8 {
		return 0, nil, false
	}
	n := int(binary.LittleEndian.Uint32(frame))
	lt = LinkType(binary.LittleEndian.Uint32(frame[4:]))
	if n < 8 || n > len(frame) || lt == linktype.PKTAP || lt == linktype.User2 {
		return 0, nil, false
	}
	return lt, frame[n:], true
}

// arista is Arista's vendor EtherType (0xd28b) header: subtype and version, then a timestamp of
// 64 bits (version 0x10) or 48 bits (version 0x20), then the EtherType of what follows.
type arista struct {
	layers.BaseLayer
	Type uint16
}

func (l *arista) LayerType() gopacket.LayerType     { return LayerTypeArista }
func (l *arista) CanDecode() gopacket.LayerClass    { return LayerTypeArista }
func (l *arista) NextLayerType() gopacket.LayerType { return etherNext(l.Type) }
func (l *arista) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		return errTruncated
	}
	n := 0
	switch data[3] { // tshark reads the low byte of the version field
	case 0x10:
		n = 14
	case 0x20:
		n = 12
	default:
		l.Type, l.BaseLayer = 0, layers.BaseLayer{Contents: data, Payload: nil}
		return nil
	}
	if len(data) < n {
		return errTruncated
	}
	l.Type = binary.BigEndian.Uint16(data[n-2:])
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// ciscoHDLC is address, control and an EtherType.
func ciscoHDLC(frame []byte) (gopacket.LayerType, []byte) {
	if len(frame) < 4 {
		return gopacket.LayerTypePayload, nil
	}
	return etherNext(be16(frame[2:])), frame[4:]
}

// llcSNAP reads an 802.2 LLC header with SNAP and the EtherType in it.
func llcSNAP(d []byte) (gopacket.LayerType, []byte) {
	if len(d) >= 8 && d[0] == 0xaa && d[1] == 0xaa && d[2] == 0x03 {
		return etherNext(be16(d[6:])), d[8:]
	}
	return gopacket.LayerTypePayload, nil
}

// frameRelay reads a two-byte Q.922 address, then either RFC 2427's control field and NLPID (with
// SNAP for NLPID 0x80), or, without the control field, Cisco's EtherType.
func frameRelay(frame []byte) (gopacket.LayerType, []byte) {
	if len(frame) < 4 || frame[1]&1 == 0 { // longer addresses are not used on these links
		return gopacket.LayerTypePayload, nil
	}
	d := frame[2:]
	if d[0] != 0x03 {
		return etherNext(be16(d)), d[2:]
	}
	d = d[1:]
	if d[0] == 0x00 && len(d) > 1 { // padding before the NLPID
		d = d[1:]
	}
	switch d[0] {
	case 0xcc:
		return LayerTypeIPv4, d[1:]
	case 0x8e:
		return LayerTypeIPv6, d[1:]
	case 0x80: // SNAP: OUI and PID
		if len(d) >= 6 && d[1] == 0 && d[2] == 0 && d[3] == 0 {
			return etherNext(be16(d[4:])), d[6:]
		}
	}
	return gopacket.LayerTypePayload, nil
}

// nflog finds the packet in a netfilter log message: a 4-byte header (address family, version,
// group), then type-length-value attributes in host byte order, padded to 4 bytes; type 9 holds
// the packet, an IPv4 or IPv6 datagram as the family says.
func nflog(frame []byte) (gopacket.LayerType, []byte) {
	if len(frame) < 4 {
		return gopacket.LayerTypePayload, nil
	}
	fam := frame[0]
	// The byte order is the capturing host's: the first attribute (a small one) tells which.
	var order binary.ByteOrder = binary.LittleEndian
	if len(frame) >= 6 && binary.LittleEndian.Uint16(frame[4:]) > 0xff {
		order = binary.BigEndian
	}
	for off := 4; off+4 <= len(frame); {
		n := int(order.Uint16(frame[off:]))
		typ := order.Uint16(frame[off+2:])
		if n < 4 || off+n > len(frame) {
			break
		}
		if typ&0x7fff == 9 {
			p := frame[off+4 : off+n]
			switch fam {
			case 2:
				return LayerTypeIPv4, p
			case 10:
				return LayerTypeIPv6, p
			}
			return ipNext(p), p
		}
		off += (n + 3) &^ 3
	}
	return gopacket.LayerTypePayload, nil
}

// dot11 is an IEEE 802.11 header. Only unprotected data frames lead on, through LLC/SNAP, to
// what they carry; management and control frames, encrypted bodies and aggregated MSDUs end
// decoding.
type dot11 struct {
	layers.BaseLayer
	next gopacket.LayerType
}

func (l *dot11) LayerType() gopacket.LayerType     { return LayerTypeDot11 }
func (l *dot11) CanDecode() gopacket.LayerClass    { return LayerTypeDot11 }
func (l *dot11) NextLayerType() gopacket.LayerType { return l.next }
func (l *dot11) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	l.next, l.BaseLayer = gopacket.LayerTypePayload, layers.BaseLayer{Contents: data}
	if len(data) < 2 {
		return errTruncated
	}
	fc, flags := data[0], data[1]
	if (fc>>2)&3 != 2 || fc&0x40 != 0 || flags&0x40 != 0 { // not data, no body (null), protected
		return nil
	}
	n := 24
	if flags&3 == 3 { // to and from the distribution system: a fourth address
		n += 6
	}
	qos := fc&0x80 != 0
	if qos {
		n += 2
		if flags&0x80 != 0 { // +HTC
			n += 4
		}
	}
	if len(data) < n {
		return errTruncated
	}
	if qos && data[n-2-boolInt(flags&0x80 != 0)*4]&0x80 != 0 { // A-MSDU present
		return nil
	}
	l.next, l.Payload = llcSNAP(data[n:])
	l.Contents = data[:n]
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// radiotap is the length of a radiotap header (little-endian, bytes 2-3); an 802.11 frame follows.
func radiotap(frame []byte) (gopacket.LayerType, []byte) {
	if len(frame) < 4 {
		return gopacket.LayerTypePayload, nil
	}
	n := int(binary.LittleEndian.Uint16(frame[2:]))
	if n < 8 || n > len(frame) {
		return gopacket.LayerTypePayload, nil
	}
	return LayerTypeDot11, frame[n:]
}

// ppi is the Per-Packet Information header: its length (little-endian, bytes 2-3) and the link
// type of the frame after it (bytes 4-7).
func ppi(frame []byte) (lt LinkType, inner []byte, ok bool) {
	if len(frame) < 8 {
		return 0, nil, false
	}
	n := int(binary.LittleEndian.Uint16(frame[2:]))
	lt = LinkType(binary.LittleEndian.Uint32(frame[4:]))
	if n < 8 || n > len(frame) || lt == linktype.PPI {
		return 0, nil, false
	}
	return lt, frame[n:], true
}

// arubaGRE says whether a GRE protocol type is one of Aruba's, which carry 802.11 frames.
func arubaGRE(proto uint16) bool { return proto >= 0x8200 && proto <= 0x83f0 && proto&0xf == 0 }
