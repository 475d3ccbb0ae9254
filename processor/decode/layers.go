package decode

import (
	"encoding/binary"
	"errors"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The layers below are gopacket DecodingLayers written here because gopacket v1.1.19 lacks them
// (SLL2, Teredo, BSD loopback as a DecodingLayer, MPLS as a DecodingLayer), panics on short
// input (LinuxSLL with a long address length, GRE), or allocates per packet (IPv6 hop-by-hop
// options, DNS). Each checks every length before it reads.

// Layer type numbers below gopacket's array bound (2000) keep DecodingLayerSparse lookups an index.
var (
	LayerTypeSLL      = gopacket.RegisterLayerType(1801, gopacket.LayerTypeMetadata{Name: "capfleet-SLL"})
	LayerTypeSLL2     = gopacket.RegisterLayerType(1802, gopacket.LayerTypeMetadata{Name: "capfleet-SLL2"})
	LayerTypeLoopback = gopacket.RegisterLayerType(1803, gopacket.LayerTypeMetadata{Name: "capfleet-Loopback"})
	LayerTypeMPLS     = gopacket.RegisterLayerType(1804, gopacket.LayerTypeMetadata{Name: "capfleet-MPLS"})
	LayerTypeIPv6     = gopacket.RegisterLayerType(1805, gopacket.LayerTypeMetadata{Name: "capfleet-IPv6"})
	LayerTypeGRE      = gopacket.RegisterLayerType(1806, gopacket.LayerTypeMetadata{Name: "capfleet-GRE"})
	LayerTypeTeredo   = gopacket.RegisterLayerType(1807, gopacket.LayerTypeMetadata{Name: "capfleet-Teredo"})
	LayerTypeDNS      = gopacket.RegisterLayerType(1808, gopacket.LayerTypeMetadata{Name: "capfleet-DNS"})
	LayerTypeERSPAN   = gopacket.RegisterLayerType(1809, gopacket.LayerTypeMetadata{Name: "capfleet-ERSPAN"})
)

// Preallocated so the error path does not allocate either.
var (
	errTruncated = errors.New("truncated")
	errMalformed = errors.New("malformed")
)

// etherNext maps an EtherType to the layer the decoder follows; anything else ends decoding.
func etherNext(t uint16) gopacket.LayerType {
	switch t {
	case 0x0800:
		return layers.LayerTypeIPv4
	case 0x86dd:
		return LayerTypeIPv6
	case 0x8100, 0x88a8, 0x9100:
		return layers.LayerTypeDot1Q
	case 0x8847, 0x8848:
		return LayerTypeMPLS
	case 0x6558:
		return layers.LayerTypeEthernet
	}
	return gopacket.LayerTypePayload
}

// ipNext guesses IPv4 or IPv6 from the version nibble, for headers that do not say what follows.
func ipNext(data []byte) gopacket.LayerType {
	if len(data) == 0 {
		return gopacket.LayerTypePayload
	}
	switch data[0] >> 4 {
	case 4:
		return layers.LayerTypeIPv4
	case 6:
		return LayerTypeIPv6
	}
	return gopacket.LayerTypePayload
}

// sll is the Linux cooked capture v1 header (16 bytes).
type sll struct {
	layers.BaseLayer
	Proto uint16
}

func (l *sll) LayerType() gopacket.LayerType     { return LayerTypeSLL }
func (l *sll) CanDecode() gopacket.LayerClass    { return LayerTypeSLL }
func (l *sll) NextLayerType() gopacket.LayerType { return etherNext(l.Proto) }
func (l *sll) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 16 {
		return errTruncated
	}
	l.Proto = binary.BigEndian.Uint16(data[14:16])
	l.BaseLayer = layers.BaseLayer{Contents: data[:16], Payload: data[16:]}
	return nil
}

// sll2 is the Linux cooked capture v2 header (20 bytes, protocol first).
type sll2 struct {
	layers.BaseLayer
	Proto uint16
}

func (l *sll2) LayerType() gopacket.LayerType     { return LayerTypeSLL2 }
func (l *sll2) CanDecode() gopacket.LayerClass    { return LayerTypeSLL2 }
func (l *sll2) NextLayerType() gopacket.LayerType { return etherNext(l.Proto) }
func (l *sll2) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		return errTruncated
	}
	l.Proto = binary.BigEndian.Uint16(data[0:2])
	l.BaseLayer = layers.BaseLayer{Contents: data[:20], Payload: data[20:]}
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
		l.next = layers.LayerTypeIPv4
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
	for walking := true; walking; {
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if end < off+2 {
				return errTruncated
			}
			n := 8 + int(data[off+1])*8
			if end < off+n {
				return errTruncated
			}
			next = data[off]
			off += n
		case 51: // authentication header: length in 4-octet units, minus 2
			if end < off+2 {
				return errTruncated
			}
			n := (int(data[off+1]) + 2) * 4
			if end < off+n {
				return errTruncated
			}
			next = data[off]
			off += n
		case 44:
			if end < off+8 {
				return errTruncated
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
		return layers.LayerTypeIPv4
	case 41:
		return LayerTypeIPv6
	case 47:
		return LayerTypeGRE
	}
	return gopacket.LayerTypePayload
}

// gre is a GRE version 0 header (RFC 2784/2890); version 1 (PPTP) carries PPP and ends decoding.
type gre struct {
	layers.BaseLayer
	Proto   uint16
	Version uint8
}

func (l *gre) LayerType() gopacket.LayerType  { return LayerTypeGRE }
func (l *gre) CanDecode() gopacket.LayerClass { return LayerTypeGRE }
func (l *gre) NextLayerType() gopacket.LayerType {
	if l.Version != 0 {
		return gopacket.LayerTypePayload
	}
	if l.Proto == 0x88be {
		return LayerTypeERSPAN
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
	n := 4
	if flags&0xc0 != 0 { // checksum or routing present: checksum + offset
		n += 4
	}
	if flags&0x20 != 0 { // key
		n += 4
	}
	if flags&0x10 != 0 { // sequence number
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

// erspan is an ERSPAN type II header (8 bytes) in front of a mirrored Ethernet frame.
type erspan struct{ layers.BaseLayer }

func (l *erspan) LayerType() gopacket.LayerType     { return LayerTypeERSPAN }
func (l *erspan) CanDecode() gopacket.LayerClass    { return LayerTypeERSPAN }
func (l *erspan) NextLayerType() gopacket.LayerType { return layers.LayerTypeEthernet }
func (l *erspan) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		return errTruncated
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:8], Payload: data[8:]}
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

// dns reads the header and the first question's name of a DNS message (UDP, or TCP with its
// two-byte length prefix) into a fixed buffer, in the dotted text form tshark's dns.qry.name uses.
type dns struct {
	layers.BaseLayer
	overTCP bool
	name    [MaxDNSName]byte
	nameLen int
}

func (l *dns) LayerType() gopacket.LayerType     { return LayerTypeDNS }
func (l *dns) CanDecode() gopacket.LayerClass    { return LayerTypeDNS }
func (l *dns) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }
func (l *dns) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	l.nameLen = 0
	if l.overTCP {
		if len(data) < 2 {
			return errTruncated
		}
		data = data[2:]
	}
	if len(data) < 12 {
		return errTruncated
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:12], Payload: data[12:]}
	if binary.BigEndian.Uint16(data[4:6]) == 0 {
		return nil
	}
	return l.readName(data, 12)
}

const hexDigits = "0123456789abcdef"

func (l *dns) readName(msg []byte, off int) error {
	n := 0
	put := func(b byte) {
		if n < len(l.name) {
			l.name[n] = b
			n++
		}
	}
	jumps := 0
	labels := 0
	for {
		if off >= len(msg) {
			return errTruncated
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0xc0: // compression pointer
			if off+1 >= len(msg) {
				return errTruncated
			}
			jumps++
			if jumps > 64 {
				return errMalformed
			}
			off = (c&0x3f)<<8 | int(msg[off+1])
			continue
		case 0x00:
		default: // extended label types (0x40, 0x80) are obsolete
			return errMalformed
		}
		if c == 0 {
			break
		}
		if off+1+c > len(msg) {
			return errTruncated
		}
		if labels > 0 {
			put('.')
		}
		labels++
		for _, b := range msg[off+1 : off+1+c] {
			switch {
			case b == '.' || b == '\\':
				put('\\')
				put(b)
			case b >= 0x20 && b < 0x7f:
				put(b)
			default:
				put('\\')
				put('x')
				put(hexDigits[b>>4])
				put(hexDigits[b&15])
			}
		}
		off += 1 + c
	}
	if labels == 0 {
		for i := 0; i < len("<Root>"); i++ {
			put("<Root>"[i])
		}
	}
	l.nameLen = n
	return nil
}
