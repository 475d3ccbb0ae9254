package decode

import (
	"encoding/binary"

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
}

func (l *mpls) LayerType() gopacket.LayerType     { return LayerTypeMPLS }
func (l *mpls) CanDecode() gopacket.LayerClass    { return LayerTypeMPLS }
func (l *mpls) NextLayerType() gopacket.LayerType { return ipNext(l.Payload) }
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

// pbb is an 802.1ah I-TAG (4 bytes); a customer Ethernet frame follows.
type pbb struct{ layers.BaseLayer }

func (l *pbb) LayerType() gopacket.LayerType     { return LayerTypePBB }
func (l *pbb) CanDecode() gopacket.LayerClass    { return LayerTypePBB }
func (l *pbb) NextLayerType() gopacket.LayerType { return layers.LayerTypeEthernet }
func (l *pbb) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		return errTruncated
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:4], Payload: data[4:]}
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
