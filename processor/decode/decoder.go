package decode

import (
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"capfleet.dev/capfleet/linktype"
)

// maxLayers bounds how many headers one frame may stack, so that a crafted tunnel-in-tunnel
// loop or a long VLAN chain costs a bounded amount of work.
const maxLayers = 24

// Stats counts what a Decoder saw. Reads are not synchronised: use one Decoder per goroutine.
type Stats struct {
	Packets   uint64
	ByReason  [NumReasons]uint64
	Fragments uint64 // frames carrying any fragment of an IP datagram (non-first ones end at IP)
}

// Decoder decodes frames into Packets. It keeps one instance of each layer and reuses them,
// so decoding allocates nothing. Not safe for concurrent use.
type Decoder struct {
	layers gopacket.DecodingLayerContainer

	eth    layers.Ethernet
	dot1q  layers.Dot1Q
	ip4    ipv4
	tcp    layers.TCP
	udp    layers.UDP
	sctp   layers.SCTP
	icmp4  layers.ICMPv4
	icmp6  layers.ICMPv6
	vxlan  layers.VXLAN
	sll    etherTyped
	sll2   etherTyped
	loop   loopback
	mpls   mpls
	ip6    ipv6
	gre    gre
	erspan erspan
	teredo teredo
	dns    dns
	pppoe  pppoe
	gtpu   gtpu
	geneve geneve
	ah     ah
	pbb    pbb
	vntag  etherTyped
	ayiya  ayiya
	cmd    cmd
	arista arista
	dot11  dot11

	truncated bool // set by gopacket layers through DecodeFeedback
	// per-frame state
	tunnel    Tunnel // encapsulation seen since the last IP header
	quoteNext bool   // the next IP header is the one an ICMP error quotes
	pending   Reason // a problem met after the headers were recorded, reported if nothing worse
	lostIP    bool   // an IP header past MaxIP was decoded over: what follows it is not recorded
	frameLen  int    // captured length of the frame
	wireLen   int    // length of the frame on the wire
	tpid      uint16 // the EtherType that announced the next VLAN tag
	dnsPort   uint16 // the port that sent the decoder into DNS
	frameCap  int    // cap of the frame: a header's offset is frameCap less its slice's cap
	off       int    // offset in the frame of the layer being recorded

	Stats Stats

	// HeadersOnly stops decoding at the transport header: nothing is read from the payload
	// (no DNS), for callers that need headers only, such as a display filter on header fields.
	HeadersOnly bool
	// VerifyChecksums checks IPv4 header and TCP, UDP and ICMP checksums (IPHeader.BadChecksum,
	// Transport.BadChecksum), as Zeek does unless run with -C.
	VerifyChecksums bool
}

// NewDecoder returns a Decoder for any of the link types listed in this package.
func NewDecoder() *Decoder {
	d := &Decoder{sll: newSLL(), sll2: newSLL2(), vntag: newVNTag(), cmd: newCMD()}
	var c gopacket.DecodingLayerContainer = gopacket.DecodingLayerSparse(nil)
	for _, l := range []gopacket.DecodingLayer{
		&d.eth, &d.dot1q, &d.ip4, &d.tcp, &d.udp, &d.sctp, &d.icmp4, &d.icmp6, &d.vxlan,
		&d.sll, &d.sll2, &d.loop, &d.mpls, &d.ip6, &d.gre, &d.erspan, &d.teredo, &d.dns,
		&d.pppoe, &d.gtpu, &d.geneve, &d.ah, &d.pbb, &d.vntag, &d.ayiya, &d.cmd, &d.arista, &d.dot11,
	} {
		c = c.Put(l)
	}
	d.layers = c
	d.gre.erspan = &d.erspan
	d.gre.cmd = &d.cmd
	return d
}

// SetTruncated implements gopacket.DecodeFeedback.
func (d *Decoder) SetTruncated() { d.truncated = true }

// firstLayer is the layer a link type starts with and where; ok is false for link types not
// supported.
func firstLayer(lt LinkType, frame []byte) (gopacket.LayerType, []byte, bool) {
	switch lt {
	case linktype.SLIP, linktype.PPP, linktype.PPPSerial, linktype.CiscoHDLC, linktype.FDDI,
		linktype.FrameRelay, linktype.IPNet, linktype.NFLOG, linktype.ARCNETLinux, linktype.IPoIB:
		typ, data := stripLink(lt, frame)
		return typ, data, true
	case linktype.PKTAP, linktype.User2:
		inner, data, ok := pktap(frame)
		if !ok {
			return gopacket.LayerTypePayload, nil, true
		}
		return firstLayer(inner, data)
	case linktype.PPI:
		inner, data, ok := ppi(frame)
		if !ok {
			return gopacket.LayerTypePayload, nil, true
		}
		return firstLayer(inner, data)
	case linktype.IEEE802_11:
		return LayerTypeDot11, frame, true
	case linktype.IEEE80211Radio:
		typ, data := radiotap(frame)
		return typ, data, true
	}
	typ, ok := firstHeader(lt, frame)
	return typ, frame, ok
}

// firstHeader is the layer a link type's frame starts with, for those the decoder records.
func firstHeader(lt LinkType, frame []byte) (gopacket.LayerType, bool) {
	switch lt {
	case LinkTypeEthernet:
		return layers.LayerTypeEthernet, true
	case LinkTypeLinuxSLL:
		return LayerTypeSLL, true
	case LinkTypeLinuxSLL2:
		return LayerTypeSLL2, true
	case LinkTypeNull, LinkTypeLoop:
		return LayerTypeLoopback, true
	case LinkTypeRaw, LinkTypeRawOpenBSD, LinkTypeRawBSD:
		return ipNext(frame), true
	case LinkTypeIPv4:
		// tshark's IPv4 dissector hands a version 6 header to IPv6; its IPv6 one keeps what it gets.
		if len(frame) > 0 && frame[0]>>4 == 6 {
			return LayerTypeIPv6, true
		}
		return LayerTypeIPv4, true
	case LinkTypeIPv6:
		return LayerTypeIPv6, true
	}
	return gopacket.LayerTypeZero, false
}

// minLen is the fixed header size of gopacket's layers, to tell a short frame (Truncated) from
// a nonsensical header (Malformed) when gopacket returns an error without saying which.
func minLen(t gopacket.LayerType) int {
	switch t {
	case layers.LayerTypeEthernet:
		return 14
	case layers.LayerTypeDot1Q:
		return 4
	case layers.LayerTypeTCP:
		return 20
	case layers.LayerTypeUDP, layers.LayerTypeICMPv4, layers.LayerTypeVXLAN:
		return 8
	case layers.LayerTypeSCTP:
		return 12
	case layers.LayerTypeICMPv6:
		return 4
	}
	return 0
}

// Decode decodes frame, captured with link type lt at ts from a packet of origLen bytes on the
// wire, into p and returns p.Reason. frame is not retained, p does not point into it.
func (d *Decoder) Decode(frame []byte, lt LinkType, ts time.Time, origLen int, p *Packet) Reason {
	p.reset()
	p.Timestamp, p.CapLen, p.Len, p.LinkType = ts, len(frame), origLen, lt
	d.tunnel, d.quoteNext, d.pending, d.tpid, d.lostIP = TunnelNone, false, OK, 0x8100, false
	d.cmd.inGRE = false // a GRE header with nothing after it left it set
	d.frameLen, d.wireLen = len(frame), max(origLen, len(frame))
	d.frameCap = cap(frame)
	d.Stats.Packets++

	typ, data, ok := firstLayer(lt, frame)
	if !ok {
		return d.finish(p, UnsupportedLink)
	}
	for depth := 0; ; depth++ {
		if typ == gopacket.LayerTypePayload || typ == gopacket.LayerTypeZero || len(data) == 0 {
			return d.finish(p, OK)
		}
		if depth == maxLayers {
			return d.finish(p, TooDeep)
		}
		dl, ok := d.layers.Decoder(typ)
		if !ok {
			return d.finish(p, OK)
		}
		d.truncated = false
		// Every layer's data is a subslice of the frame, so its cap says where it starts.
		d.off = d.frameCap - cap(data)
		if err := dl.DecodeFromBytes(data, d); err != nil {
			d.recordPartial(typ, data, p)
			if d.quoteNext || d.insideQuote(p) {
				return d.finish(p, OK) // the quoted packet is cut short by design
			}
			if err == errTruncated || d.truncated || len(data) < minLen(typ) {
				return d.finish(p, Truncated)
			}
			return d.finish(p, Malformed)
		}
		typ, data = d.record(typ, dl, p, data)
	}
}

func (d *Decoder) insideQuote(p *Packet) bool {
	return p.NIP > 0 && p.IP[p.NIP-1].Quoted
}

func (d *Decoder) finish(p *Packet, r Reason) Reason {
	if r == OK && p.NIP == 0 {
		r = NotIP
	}
	if r == OK {
		r = d.pending
	}
	for i := 0; i < int(p.NIP); i++ {
		if p.IP[i].Fragment && !p.IP[i].Quoted {
			d.Stats.Fragments++
			break
		}
	}
	p.Reason = r
	d.Stats.ByReason[r]++
	return r
}

// lastIP is the IP header a transport header belongs to, or nil when none was kept: after a
// header past MaxIP, the last one kept is not it, and its addresses must not get another's ports.
func (d *Decoder) lastIP(p *Packet) *IPHeader {
	if p.NIP == 0 || d.lostIP {
		return nil
	}
	return &p.IP[p.NIP-1]
}

// newIP appends an IP header to p, or returns a scratch header when MaxIP are already kept.
func (d *Decoder) newIP(p *Packet, scratch *IPHeader) *IPHeader {
	h := scratch
	if int(p.NIP) < MaxIP {
		h = &p.IP[p.NIP]
		p.NIP++
	} else {
		d.lostIP = true
	}
	*h = IPHeader{Quoted: d.quoteNext || d.insideQuote(p), Off: d.off}
	if !h.Quoted && p.NIP > 1 && p.Tunnel == TunnelNone {
		p.Tunnel = d.tunnel
		if p.Tunnel == TunnelNone {
			p.Tunnel = TunnelIPinIP
		}
	}
	d.quoteNext = false
	return h
}

// record copies the fields of the layer just decoded into p and picks the next layer.
func (d *Decoder) record(typ gopacket.LayerType, dl gopacket.DecodingLayer, p *Packet, data []byte) (gopacket.LayerType, []byte) {
	var scratch IPHeader
	switch typ {
	case layers.LayerTypeEthernet:
		// Cisco FabricPath: the outer header is FabricPath's own, and tshark names the frame
		// inside it eth; so do we.
		if d.eth.EthernetType == 0x8903 && len(d.eth.Payload) >= 2 { // FTag and TTL, then the frame
			return layers.LayerTypeEthernet, d.eth.Payload[2:]
		}
		if int(p.NEth) < MaxEth {
			e := &p.Eths[p.NEth]
			copy(e.Dst[:], d.eth.DstMAC)
			copy(e.Src[:], d.eth.SrcMAC)
			e.Type = uint16(d.eth.EthernetType)
			if d.eth.Length != 0 || d.eth.EthernetType == layers.EthernetTypeLLC {
				e.Type = 0
			}
			p.NEth++
		}
		if !p.HasEth {
			p.HasEth = true
			copy(p.EthDst[:], d.eth.DstMAC)
			copy(p.EthSrc[:], d.eth.SrcMAC)
			p.EthType = uint16(d.eth.EthernetType)
			if d.eth.Length != 0 || d.eth.EthernetType == layers.EthernetTypeLLC {
				p.EthType = 0
			}
		}
		if d.eth.EthernetType == layers.EthernetTypeLLC {
			// 802.3 with an LLC/SNAP header carries an EtherType after it.
			if pl := d.eth.Payload; len(pl) >= 8 && pl[0] == 0xaa && pl[1] == 0xaa && pl[2] == 0x03 {
				d.tpid = be16(pl[6:])
				return etherNext(be16(pl[6:])), pl[8:]
			}
			return gopacket.LayerTypePayload, nil
		}
		d.tpid = uint16(d.eth.EthernetType)
		return etherNext(uint16(d.eth.EthernetType)), d.eth.Payload
	case layers.LayerTypeDot1Q:
		if int(p.NTags) < MaxTags {
			p.Tags[p.NTags] = VLANTag{TPID: d.tpid, ID: d.dot1q.VLANIdentifier}
			p.NTags++
		}
		d.tpid = uint16(d.dot1q.Type)
		if int(p.NVLAN) < len(p.VLAN) {
			p.VLAN[p.NVLAN] = d.dot1q.VLANIdentifier
		}
		if p.NVLAN < 255 {
			p.NVLAN++
		}
		return etherNext(uint16(d.dot1q.Type)), d.dot1q.Payload
	case LayerTypeMPLS:
		if p.NMPLS == 0 {
			p.MPLSLabel = d.mpls.FirstLabel
		}
		p.NMPLS += uint8(min(d.mpls.Labels, 255-int(p.NMPLS)))
	case LayerTypeIPv4:
		h := d.newIP(p, &scratch)
		ip := &d.ip4
		h.Version = 4
		h.Src = netip.AddrFrom4(ip.Src)
		h.Dst = netip.AddrFrom4(ip.Dst)
		h.NextHeader, h.Proto, h.TTL = ip.Protocol, ip.Protocol, ip.TTL
		h.TotalLen, h.HeaderLen = int(ip.Length), ip.IHL
		if ip.Length == 0 { // TCP segmentation offload: the length is the frame's
			h.TotalLen = len(data)
		}
		h.Reported = d.reported(h.TotalLen, data)
		h.ID = uint32(ip.ID)
		h.FragOffset = ip.FragOffset * 8
		h.MoreFrags = ip.Flags&1 != 0
		h.DontFrag = ip.Flags&2 != 0
		h.Fragment = h.MoreFrags || h.FragOffset != 0
		d.checkIPv4(h, data)
		if h.FragOffset != 0 {
			return gopacket.LayerTypePayload, nil
		}
		return protoNext(h.Proto), ip.Payload
	case LayerTypeIPv6:
		h := d.newIP(p, &scratch)
		ip := &d.ip6
		h.Version = 6
		h.Src, h.Dst = netip.AddrFrom16(ip.Src), netip.AddrFrom16(ip.Dst)
		h.NextHeader, h.Proto, h.TTL = ip.NextHeader, ip.Proto, ip.HopLimit
		h.TotalLen, h.HeaderLen = 40+int(ip.PayloadLen), ip.HeaderLen
		h.Reported = d.reported(h.TotalLen, data)
		// An atomic fragment (offset 0, no more fragments) is a whole datagram.
		h.ID, h.FragOffset, h.MoreFrags = ip.FragID, ip.FragOffset, ip.MoreFrags
		h.Fragment = ip.Fragment && (ip.FragOffset != 0 || ip.MoreFrags)
		if ip.extCut {
			d.pending = Truncated
			return gopacket.LayerTypePayload, nil
		}
	case layers.LayerTypeTCP:
		d.recordTCP(p, d.tcp.Contents)
		if h := d.lastIP(p); h != nil {
			d.checkL4(h, data)
		}
		if h := d.lastIP(p); h != nil && !d.HeadersOnly && !h.Quoted && (d.tcp.SrcPort == 53 || d.tcp.DstPort == 53) {
			d.dns.overTCP = true
			d.dnsPort = 53
			return LayerTypeDNS, d.tcp.Payload
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeUDP:
		d.recordUDP(p, d.udp.Contents)
		if h := d.lastIP(p); h != nil {
			d.checkL4(h, data)
		}
		return d.udpNext(p), d.udp.Payload
	case layers.LayerTypeSCTP:
		if h := d.lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoSCTP, SrcPort: uint16(d.sctp.SrcPort), DstPort: uint16(d.sctp.DstPort)}
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeICMPv4:
		t, c := d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
		if h := d.lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoICMP, ICMPType: t, ICMPCode: c}
			d.checkL4(h, data)
		}
		switch t {
		case 3, 4, 5, 11, 12: // errors quote the offending datagram's header
			if !d.insideQuote(p) {
				d.quoteNext = true
				return LayerTypeIPv4, d.icmp4.Payload
			}
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeICMPv6:
		t, c := d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
		if h := d.lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoICMPv6, ICMPType: t, ICMPCode: c}
			d.checkL4(h, data)
		}
		if t >= 1 && t <= 4 && len(d.icmp6.Payload) >= 4 && !d.insideQuote(p) {
			d.quoteNext = true
			return LayerTypeIPv6, d.icmp6.Payload[4:]
		}
		return gopacket.LayerTypePayload, nil
	case LayerTypeAH:
		if h := d.lastIP(p); h != nil {
			h.Proto = d.ah.Next
			h.HeaderLen += len(d.ah.Contents)
		}
	case LayerTypeDNS:
		if !p.HasDNS && !d.dns.skipped {
			p.HasDNS = true
			p.DNSPort = d.dnsPort
			p.dnsLen = copy(p.dnsName[:], d.dns.name[:d.dns.nameLen])
		}
		return gopacket.LayerTypePayload, nil
	default:
		d.enterTunnel(typ)
	}
	return dl.NextLayerType(), dl.LayerPayload()
}

// tunnels is the encapsulation each tunnel layer opens. IP in IP has no layer of its own: newIP
// tells it from the stack of IP headers.
var tunnels = map[gopacket.LayerType]Tunnel{
	layers.LayerTypeVXLAN: TunnelVXLAN,
	LayerTypeGRE:          TunnelGRE,
	LayerTypeTeredo:       TunnelTeredo,
	LayerTypeGTPU:         TunnelGTP,
	LayerTypeGeneve:       TunnelGeneve,
	LayerTypeAYIYA:        TunnelAYIYA,
}

// enterTunnel notes the tunnel a layer opens; a packet is labelled with its outermost one.
func (d *Decoder) enterTunnel(typ gopacket.LayerType) {
	if d.tunnel != TunnelNone {
		return
	}
	if t, ok := tunnels[typ]; ok {
		d.tunnel = t
	}
}

// udpNext picks what a UDP payload is by port, as tshark does for these protocols.
func (d *Decoder) udpNext(p *Packet) gopacket.LayerType {
	h := d.lastIP(p)
	if h == nil || len(d.udp.Payload) == 0 {
		return gopacket.LayerTypePayload
	}
	// tshark stops at a length below the header's own 8 bytes (BIG TCP's 0 over IPv4); over
	// IPv6, 0 is a jumbogram's and the payload is read.
	if d.udp.Length < 8 && (h.Version != 6 || d.udp.Length != 0) {
		return gopacket.LayerTypePayload
	}
	// Like tshark, try the lower port first, then the higher.
	lo, hi := d.udp.SrcPort, d.udp.DstPort
	if lo > hi {
		lo, hi = hi, lo
	}
	next := udpPortLayer(uint16(lo))
	d.dnsPort = uint16(lo)
	if next == gopacket.LayerTypePayload {
		next = udpPortLayer(uint16(hi))
		d.dnsPort = uint16(hi)
	}
	// A header quoted in an ICMP error is followed into DNS, as tshark does, but not into tunnels.
	if h.Quoted && next != LayerTypeDNS {
		return gopacket.LayerTypePayload
	}
	if next == LayerTypeDNS {
		if d.HeadersOnly {
			return gopacket.LayerTypePayload
		}
		d.dns.overTCP = false
	}
	return next
}

// udpPortLayer is the protocol tshark dissects on a UDP port, among those decoded here.
func udpPortLayer(port uint16) gopacket.LayerType {
	switch port {
	case 53, 5353, 5355:
		return LayerTypeDNS
	case 4789:
		return layers.LayerTypeVXLAN
	case 6081:
		return LayerTypeGeneve
	case 2152:
		return LayerTypeGTPU
	case 3544:
		return LayerTypeTeredo
	case 4754:
		return LayerTypeGRE
	case 5072:
		return LayerTypeAYIYA
	}
	return gopacket.LayerTypePayload
}

func (d *Decoder) recordTCP(p *Packet, hdr []byte) {
	h := d.lastIP(p)
	if h == nil {
		return
	}
	h.L4 = Transport{Proto: ProtoTCP, Off: d.off}
	t := &h.L4
	if len(hdr) >= 4 {
		t.SrcPort, t.DstPort = be16(hdr[0:]), be16(hdr[2:])
	}
	if len(hdr) < 20 {
		// tshark shows only the ports of a header cut short (as an ICMP error quotes it).
		t.PayloadLen, t.Short = -1, true
		return
	}
	t.Seq = be32(hdr[4:])
	if hdr[12]>>4 < 5 {
		t.PayloadLen = -1 // tshark stops at a bogus header length: no flags, ack or length
		t.BadOffset = true
		return
	}
	t.Ack = be32(hdr[8:])
	t.Flags = be16(hdr[12:]) & 0x0fff
	t.PayloadLen = h.Reported - h.HeaderLen - int(hdr[12]>>4)*4
	t.Window = be16(hdr[14:])
}

func (d *Decoder) recordUDP(p *Packet, hdr []byte) {
	h := d.lastIP(p)
	if h == nil || len(hdr) < 4 {
		return
	}
	h.L4 = Transport{Proto: ProtoUDP, SrcPort: be16(hdr[0:]), DstPort: be16(hdr[2:]), Off: d.off}
	if len(hdr) >= 6 {
		h.L4.UDPLen = be16(hdr[4:])
		h.L4.PayloadLen = max(int(h.L4.UDPLen)-8, 0)
	}
}

// recordPartial keeps the transport fields that precede the point where a header was cut,
// as tshark shows them.
func (d *Decoder) recordPartial(typ gopacket.LayerType, data []byte, p *Packet) {
	switch typ {
	case LayerTypeIPv4:
		if len(data) < 4 || data[0]>>4 != 4 {
			break
		}
		switch ihl, total := int(data[0]&15)*4, int(be16(data[2:])); {
		case ihl < 20 || (total != 0 && total < ihl):
			// tshark shows the total length, then stops at the bogus header or total length
			d.recordPartialIP(p, data[:4], 4)
		case len(data) < 20:
			d.recordPartialIP(p, data, 4)
		case len(data) < ihl: // options cut: tshark shows the source but not the destination
			d.recordPartialIP(p, data[:19], 4)
		}
	case LayerTypeIPv6:
		if len(data) >= 6 && len(data) < 40 && data[0]>>4 == 6 {
			d.recordPartialIP(p, data, 6)
		}
	case layers.LayerTypeTCP:
		d.recordTCP(p, data)
	case layers.LayerTypeUDP:
		d.recordUDP(p, data)
	case layers.LayerTypeICMPv4, layers.LayerTypeICMPv6:
		if h := d.lastIP(p); h != nil && len(data) >= 2 {
			proto := ProtoICMP
			if typ == layers.LayerTypeICMPv6 {
				proto = ProtoICMPv6
			}
			h.L4 = Transport{Proto: proto, ICMPType: data[0], ICMPCode: data[1]}
		}
	}
}

// reported is an IP datagram's length as far as the wire frame holds it: tshark's "reported
// length", which bounds tcp.len when a header claims more than the frame carried.
func (d *Decoder) reported(total int, data []byte) int {
	offset := d.frameLen - len(data)
	return max(min(total, d.wireLen-offset), 0)
}

// recordPartialIP keeps the fields of an IP header cut short that lie before the cut, as tshark
// shows them. Partial marks the header so that flows ignore it.
func (d *Decoder) recordPartialIP(p *Packet, data []byte, version uint8) {
	var scratch IPHeader
	h := d.newIP(p, &scratch)
	h.Version, h.Partial = version, uint8(min(len(data), 40))
	n := len(data)
	if version == 4 {
		h.TotalLen, h.HeaderLen = int(be16(data[2:])), int(data[0]&15)*4
		if n >= 9 {
			h.TTL = data[8]
		}
		if n >= 10 {
			h.NextHeader, h.Proto = data[9], data[9]
		}
		if n >= 16 {
			h.Src = netip.AddrFrom4([4]byte(data[12:16]))
		}
		if n >= 20 {
			h.Dst = netip.AddrFrom4([4]byte(data[16:20]))
		}
		return
	}
	h.TotalLen = 40 + int(be16(data[4:]))
	if n >= 7 {
		h.NextHeader, h.Proto = data[6], data[6]
	}
	if n >= 8 {
		h.TTL = data[7]
	}
	if n >= 24 {
		h.Src = netip.AddrFrom16([16]byte(data[8:24]))
	}
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
