// Package decode turns a captured frame into a flat Packet: the link, VLAN, IP and transport
// fields that the flow table, the BPF filter's callers and the storage sinks need, without
// allocating per packet. Frames it cannot fully decode are classified by a small fixed Reason.
package decode

import (
	"bytes"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/linktype"
)

// LinkType is a pcap LINKTYPE_ value: the link type shared with the capture reader and the Kafka
// packet record.
type LinkType = linktype.Type

// Link types the decoder understands.
const (
	LinkTypeNull       = linktype.Null
	LinkTypeEthernet   = linktype.Ethernet
	LinkTypeRawBSD     = linktype.RawBSD
	LinkTypeRawOpenBSD = linktype.RawOpenBSD
	LinkTypeRaw        = linktype.Raw
	LinkTypeLoop       = linktype.Loop
	LinkTypeLinuxSLL   = linktype.LinuxSLL
	LinkTypeIPv4       = linktype.IPv4
	LinkTypeIPv6       = linktype.IPv6
	LinkTypeLinuxSLL2  = linktype.LinuxSLL2
)

// Reason says why a frame was not decoded down to its transport header. The set is fixed so
// that it can be a metric label.
type Reason uint8

const (
	// OK: decoded as far as the decoder goes (transport header, or an IP protocol it does not parse).
	OK Reason = iota
	// NotIP: the link layer decoded but carries something other than IP (ARP, LLDP, STP...).
	NotIP
	// UnsupportedLink: the capture's link type is not one the decoder knows.
	UnsupportedLink
	// Truncated: a header ends before the capture does (snap length or a cut frame).
	Truncated
	// Malformed: a header field is impossible (bad version, length smaller than the header...).
	Malformed
	// TooDeep: more nested layers than the decoder follows (tunnel loops, VLAN floods).
	TooDeep
	// NumReasons is the number of reasons, for arrays indexed by Reason.
	NumReasons
)

var reasonNames = [NumReasons]string{"ok", "not_ip", "unsupported_link", "truncated", "malformed", "too_deep"}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Tunnel is the kind of the first encapsulation the decoder went through.
type Tunnel uint8

const (
	TunnelNone Tunnel = iota
	TunnelGRE
	TunnelVXLAN
	TunnelIPinIP // IPv4 or IPv6 directly inside IPv4 or IPv6
	TunnelTeredo
	TunnelGTP
	TunnelGeneve
	TunnelAYIYA
)

var tunnelNames = [...]string{"", "gre", "vxlan", "ipip", "teredo", "gtp", "geneve", "ayiya"}

func (t Tunnel) String() string {
	if int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return "unknown"
}

// IP protocol numbers used by the decoder and the flow table.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// TCP flag bits as they sit in the low byte of the flags field.
const (
	TCPFin uint16 = 0x01
	TCPSyn uint16 = 0x02
	TCPRst uint16 = 0x04
	TCPPsh uint16 = 0x08
	TCPAck uint16 = 0x10
	TCPUrg uint16 = 0x20
	TCPEce uint16 = 0x40
	TCPCwr uint16 = 0x80
)

// MaxIP is how many IP headers a Packet records; deeper ones are decoded over but not kept.
const MaxIP = 4

// MaxEth is how many Ethernet headers a Packet records (the outer one and those inside
// tunnels), and MaxTags how many VLAN tags with their TPID: the occurrences a display filter sees.
const (
	MaxEth  = 4
	MaxTags = 4
)

// EthHeader is one Ethernet header; Type is 0 for an 802.3 frame with a length field.
type EthHeader struct {
	Src, Dst [6]byte
	Type     uint16
}

// VLANTag is one 802.1Q or 802.1ad tag: TPID is the EtherType that announced it (0x8100,
// 0x88a8, 0x9100), which is what tells tshark's vlan from its ieee8021ad.
type VLANTag struct {
	TPID, ID uint16
}

// MaxDNSName bounds the query name kept from a DNS question (a DNS name is at most 255 bytes,
// but a dotted text form with escapes can be longer).
const MaxDNSName = 1024

// Transport is the header that followed one IP header.
type Transport struct {
	Proto   uint8 // which of the fields below are set: ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP, ProtoICMPv6, or 0
	SrcPort uint16
	DstPort uint16
	// TCP
	Flags uint16 // the 12 low bits of TCP header bytes 12-13, as tshark's tcp.flags
	// BadOffset: the TCP data offset is below 5 words, so only ports and Seq are meaningful.
	BadOffset bool
	// Short: fewer than 20 bytes of TCP header were captured; only the ports are set.
	Short  bool
	Seq    uint32
	Ack    uint32
	Window uint16
	// PayloadLen is the transport payload length as tshark's tcp.len computes it (the IP length,
	// bounded by the frame's length on the wire, less the headers), or the UDP length field less 8;
	// not what the capture kept.
	PayloadLen int
	UDPLen     uint16
	// ICMP and ICMPv6
	ICMPType, ICMPCode uint8
	// BadChecksum: the checksum does not match the segment (set only when the Decoder verifies
	// checksums, for a segment captured whole).
	BadChecksum bool
	// Off is where the transport header starts in the frame, for readers of fields the decoder
	// does not keep (checksum, urgent pointer, options).
	Off int
}

// IPHeader is one IPv4 or IPv6 header and the transport after it.
type IPHeader struct {
	Version  uint8
	Src, Dst netip.Addr
	// NextHeader is ip.proto for IPv4 and ipv6.nxt (the first next header) for IPv6.
	NextHeader uint8
	// Proto is the upper-layer protocol after any IPv6 extension headers.
	Proto uint8
	TTL   uint8 // hop limit for IPv6
	// TotalLen is the IPv4 total length, or 40 + the IPv6 payload length: the IP bytes Zeek counts.
	TotalLen  int
	HeaderLen int // IPv4 IHL*4 (+ AH), or 40 + extension headers for IPv6
	// Reported is TotalLen bounded by what the frame carried on the wire.
	Reported   int
	ID         uint32
	FragOffset uint16 // in bytes
	MoreFrags  bool
	DontFrag   bool
	// Fragment is true for any piece of a fragmented datagram; only the first has a Transport.
	Fragment bool
	// Quoted is true for the header inside an ICMP error message: it describes another packet.
	Quoted bool
	// Partial, when not 0, is how many bytes of a header cut short were captured: only the
	// fields within them are set, and flows ignore the header.
	Partial uint8
	// BadChecksum: an IPv4 header checksum that does not match (when the Decoder verifies them).
	BadChecksum bool
	// Off is where this IP header starts in the frame, for readers of fields the decoder does
	// not keep (DSCP, checksum, options, flow label).
	Off int
	L4  Transport
}

// Holds says whether the header was captured up to byte end of it: a field that ends there is set.
func (h *IPHeader) Holds(end int) bool { return h.Partial == 0 || int(h.Partial) >= end }

// Packet is one decoded frame. The Decoder overwrites it on every call; copy what must outlive it.
type Packet struct {
	Timestamp time.Time
	CapLen    int
	Len       int
	LinkType  LinkType
	Reason    Reason

	HasEth  bool
	EthSrc  [6]byte
	EthDst  [6]byte
	EthType uint16 // 0 for an 802.3 frame with a length field

	// VLAN holds the first two VLAN IDs in wire order (outer first); NVLAN counts every tag.
	VLAN  [2]uint16
	NVLAN uint8

	// Eths holds the Ethernet headers in wire order, NEth of them; the first is also in
	// EthSrc, EthDst and EthType.
	Eths [MaxEth]EthHeader
	NEth uint8
	// Tags holds the VLAN tags in wire order, NTags of them.
	Tags  [MaxTags]VLANTag
	NTags uint8

	NMPLS     uint8 // number of MPLS labels
	MPLSLabel uint32

	Tunnel Tunnel

	// IP holds the IP headers in wire order; NIP of them are set.
	IP  [MaxIP]IPHeader
	NIP uint8

	// DNS query names of the questions of the first DNS message, dotted, NUL between them;
	// HasDNS is true when a DNS header was decoded (there may still be no name).
	HasDNS bool
	// DNSPort is the port that made the decoder read DNS (53, or 5353 for mDNS, 5355 for
	// LLMNR, which tshark names differently).
	DNSPort uint16
	dnsName [MaxDNSName]byte
	dnsLen  int
}

// DNSName is the first query name, valid until the Packet is reused.
func (p *Packet) DNSName() []byte {
	n := p.dnsName[:p.dnsLen]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		return n[:i]
	}
	return n
}

// DNSNames are the query names of every question, NUL between them, valid until the Packet is reused.
func (p *Packet) DNSNames() []byte { return p.dnsName[:p.dnsLen] }

// Inner returns the innermost IP header that is whole and not quoted inside an ICMP error: the
// one a flow is keyed by. ok is false when the frame carries no IP.
func (p *Packet) Inner() (h *IPHeader, ok bool) {
	for i := int(p.NIP) - 1; i >= 0; i-- {
		if h := &p.IP[i]; !h.Quoted && h.Partial == 0 {
			return h, true
		}
	}
	return nil, false
}

// Outer returns the first IP header, the one on the wire.
func (p *Packet) Outer() (h *IPHeader, ok bool) {
	if p.NIP == 0 {
		return nil, false
	}
	return &p.IP[0], true
}

func (p *Packet) reset() {
	// Clearing the IP headers one by one keeps reset cheap when NIP is small.
	for i := 0; i < int(p.NIP); i++ {
		p.IP[i] = IPHeader{}
	}
	p.Timestamp = time.Time{}
	p.CapLen, p.Len, p.LinkType, p.Reason = 0, 0, 0, OK
	p.HasEth, p.EthSrc, p.EthDst, p.EthType = false, [6]byte{}, [6]byte{}, 0
	p.VLAN, p.NVLAN, p.NMPLS, p.MPLSLabel = [2]uint16{}, 0, 0, 0
	p.Tunnel, p.NIP = TunnelNone, 0
	p.NEth, p.NTags = 0, 0
	p.HasDNS, p.DNSPort, p.dnsLen = false, 0, 0
}

// ReasonNames lists the reasons' names in order, for metric labels.
func ReasonNames() []string { return reasonNames[:] }
