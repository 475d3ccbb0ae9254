package decode

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

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
	LayerTypePPPoE    = gopacket.RegisterLayerType(1810, gopacket.LayerTypeMetadata{Name: "capfleet-PPPoE"})
	LayerTypeGTPU     = gopacket.RegisterLayerType(1811, gopacket.LayerTypeMetadata{Name: "capfleet-GTPU"})
	LayerTypeGeneve   = gopacket.RegisterLayerType(1812, gopacket.LayerTypeMetadata{Name: "capfleet-Geneve"})
	LayerTypeAH       = gopacket.RegisterLayerType(1813, gopacket.LayerTypeMetadata{Name: "capfleet-AH"})
	LayerTypeIPv4     = gopacket.RegisterLayerType(1814, gopacket.LayerTypeMetadata{Name: "capfleet-IPv4"})
	LayerTypePBB      = gopacket.RegisterLayerType(1815, gopacket.LayerTypeMetadata{Name: "capfleet-PBB"})
	LayerTypeVNTag    = gopacket.RegisterLayerType(1816, gopacket.LayerTypeMetadata{Name: "capfleet-VNTag"})
	LayerTypeAYIYA    = gopacket.RegisterLayerType(1817, gopacket.LayerTypeMetadata{Name: "capfleet-AYIYA"})
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
		return LayerTypeIPv4
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

// gre is a GRE version 0 header (RFC 2784/2890); version 1 (PPTP) carries PPP and ends decoding.
type gre struct {
	layers.BaseLayer
	Proto   uint16
	Version uint8
	pppNext gopacket.LayerType // for version 1: what the PPP frame carries
	seq     bool
	erspan  *erspan // told which ERSPAN version follows
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
// subheader) header in front of a mirrored Ethernet frame.
type erspan struct {
	layers.BaseLayer
	version int
}

func (l *erspan) LayerType() gopacket.LayerType     { return LayerTypeERSPAN }
func (l *erspan) CanDecode() gopacket.LayerClass    { return LayerTypeERSPAN }
func (l *erspan) NextLayerType() gopacket.LayerType { return layers.LayerTypeEthernet }
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
	skipped bool // a TCP segment that does not hold a whole DNS message
	name    [MaxDNSName]byte
	nameLen int
}

func (l *dns) LayerType() gopacket.LayerType     { return LayerTypeDNS }
func (l *dns) CanDecode() gopacket.LayerClass    { return LayerTypeDNS }
func (l *dns) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }
func (l *dns) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	l.nameLen = 0
	if l.overTCP {
		// tshark shows a DNS message over TCP on the segment that completes it; a segment that
		// does not hold a whole message is shown as plain TCP, and so here.
		if len(data) < 2 || int(binary.BigEndian.Uint16(data))+2 > len(data) {
			l.BaseLayer = layers.BaseLayer{Payload: data}
			l.skipped = true
			return nil
		}
		data = data[2:]
	}
	l.skipped = false
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
	end := -1 // where the question continues after the name: after the first pointer or the root label
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
				return l.setName("<Name contains a pointer that loops>")
			}
			if end < 0 {
				end = off + 2
			}
			off = (c&0x3f)<<8 | int(msg[off+1])
			continue
		case 0x00:
		default: // extended label types (0x40, 0x80) are obsolete
			return errMalformed
		}
		if c == 0 {
			if end < 0 {
				end = off + 1
			}
			break
		}
		if off+1+c > len(msg) {
			return errTruncated
		}
		if labels > 0 {
			put('.')
		}
		labels++
		label := msg[off+1 : off+1+c]
		for i := 0; i < len(label); {
			b := label[i]
			switch {
			case b >= 0x20 && b < 0x7f:
				put(b)
				i++
			case b < 0x80: // control characters: backslash and three octal digits
				put('\\')
				put('0' + b>>6)
				put('0' + (b>>3)&7)
				put('0' + b&7)
				i++
			default: // UTF-8 passes through; a byte that is not UTF-8 becomes U+FFFD
				r, size := utf8.DecodeRune(label[i:])
				if r == utf8.RuneError && size <= 1 {
					put(0xef)
					put(0xbf)
					put(0xbd)
					i += brokenSequence(label[i:])
					continue
				}
				for _, x := range label[i : i+size] {
					put(x)
				}
				i += size
			}
		}
		off += 1 + c
	}
	// tshark adds the name with the question's type and class: without them, no name.
	if end+4 > len(msg) {
		return errTruncated
	}
	if labels == 0 {
		for i := 0; i < len("<Root>"); i++ {
			put("<Root>"[i])
		}
	}
	l.nameLen = n
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
	switch binary.BigEndian.Uint16(data[6:8]) {
	case 0x0021:
		l.next = LayerTypeIPv4
	case 0x0057:
		l.next = LayerTypeIPv6
	default:
		l.next = gopacket.LayerTypePayload
	}
	if end < 8 {
		end = 8
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:8], Payload: data[8:end]}
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
		switch proto {
		case 0x21:
			l.pppNext = LayerTypeIPv4
		case 0x57:
			l.pppNext = LayerTypeIPv6
		}
	}
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

// brokenSequence is how many bytes of an invalid UTF-8 sequence tshark replaces with one U+FFFD:
// the lead byte and the continuation bytes that follow it, up to the length the lead announces.
func brokenSequence(b []byte) int {
	want := 1
	switch {
	case b[0] >= 0xf0 && b[0] < 0xf8:
		want = 4
	case b[0] >= 0xe0:
		want = 3
	case b[0] >= 0xc0:
		want = 2
	}
	n := 1
	for n < want && n < len(b) && b[n]&0xc0 == 0x80 {
		n++
	}
	return n
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

// vntag is a Cisco VN-Tag (4 bytes and an EtherType).
type vntag struct {
	layers.BaseLayer
	Type uint16
}

func (l *vntag) LayerType() gopacket.LayerType     { return LayerTypeVNTag }
func (l *vntag) CanDecode() gopacket.LayerClass    { return LayerTypeVNTag }
func (l *vntag) NextLayerType() gopacket.LayerType { return etherNext(l.Type) }
func (l *vntag) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 6 {
		return errTruncated
	}
	l.Type = binary.BigEndian.Uint16(data[4:6])
	l.BaseLayer = layers.BaseLayer{Contents: data[:6], Payload: data[6:]}
	return nil
}

// setName stores one of the texts tshark shows in place of a name it cannot expand.
func (l *dns) setName(text string) error {
	l.nameLen = copy(l.name[:], text)
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
