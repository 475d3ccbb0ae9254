package decode

import (
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
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
	ip4    layers.IPv4
	tcp    layers.TCP
	udp    layers.UDP
	sctp   layers.SCTP
	icmp4  layers.ICMPv4
	icmp6  layers.ICMPv6
	vxlan  layers.VXLAN
	sll    sll
	sll2   sll2
	loop   loopback
	mpls   mpls
	ip6    ipv6
	gre    gre
	erspan erspan
	teredo teredo
	dns    dns

	truncated bool // set by gopacket layers through DecodeFeedback
	// per-frame state
	tunnel    Tunnel // encapsulation seen since the last IP header
	quoteNext bool   // the next IP header is the one an ICMP error quotes

	Stats Stats
}

// NewDecoder returns a Decoder for any of the link types listed in this package.
func NewDecoder() *Decoder {
	d := &Decoder{}
	var c gopacket.DecodingLayerContainer = gopacket.DecodingLayerSparse(nil)
	for _, l := range []gopacket.DecodingLayer{
		&d.eth, &d.dot1q, &d.ip4, &d.tcp, &d.udp, &d.sctp, &d.icmp4, &d.icmp6, &d.vxlan,
		&d.sll, &d.sll2, &d.loop, &d.mpls, &d.ip6, &d.gre, &d.erspan, &d.teredo, &d.dns,
	} {
		c = c.Put(l)
	}
	d.layers = c
	return d
}

// SetTruncated implements gopacket.DecodeFeedback.
func (d *Decoder) SetTruncated() { d.truncated = true }

// firstLayer is the layer a link type starts with; ok is false for link types not supported.
func firstLayer(lt LinkType, frame []byte) (gopacket.LayerType, bool) {
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
		return layers.LayerTypeIPv4, true
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
	case layers.LayerTypeIPv4, layers.LayerTypeTCP:
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
	d.tunnel, d.quoteNext = TunnelNone, false
	d.Stats.Packets++

	typ, ok := firstLayer(lt, frame)
	if !ok {
		return d.finish(p, UnsupportedLink)
	}
	data := frame
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
		typ, data = d.record(typ, dl, p)
	}
}

func (d *Decoder) insideQuote(p *Packet) bool {
	return p.NIP > 0 && p.IP[p.NIP-1].Quoted
}

func (d *Decoder) finish(p *Packet, r Reason) Reason {
	if r == OK && p.NIP == 0 {
		r = NotIP
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

// lastIP is the IP header a transport header belongs to, or nil when none was kept.
func lastIP(p *Packet) *IPHeader {
	if p.NIP == 0 {
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
	}
	*h = IPHeader{Quoted: d.quoteNext || d.insideQuote(p)}
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
func (d *Decoder) record(typ gopacket.LayerType, dl gopacket.DecodingLayer, p *Packet) (gopacket.LayerType, []byte) {
	var scratch IPHeader
	switch typ {
	case layers.LayerTypeEthernet:
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
			return gopacket.LayerTypePayload, nil
		}
		return etherNext(uint16(d.eth.EthernetType)), d.eth.Payload
	case layers.LayerTypeDot1Q:
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
	case layers.LayerTypeIPv4:
		h := d.newIP(p, &scratch)
		ip := &d.ip4
		h.Version = 4
		h.Src = netip.AddrFrom4([4]byte(ip.SrcIP))
		h.Dst = netip.AddrFrom4([4]byte(ip.DstIP))
		h.NextHeader, h.Proto, h.TTL = uint8(ip.Protocol), uint8(ip.Protocol), ip.TTL
		h.TotalLen, h.HeaderLen = int(ip.Length), int(ip.IHL)*4
		h.ID = uint32(ip.Id)
		h.FragOffset = ip.FragOffset * 8
		h.MoreFrags = ip.Flags&layers.IPv4MoreFragments != 0
		h.DontFrag = ip.Flags&layers.IPv4DontFragment != 0
		h.Fragment = h.MoreFrags || h.FragOffset != 0
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
		h.ID, h.FragOffset, h.MoreFrags, h.Fragment = ip.FragID, ip.FragOffset, ip.MoreFrags, ip.Fragment
	case layers.LayerTypeTCP:
		d.recordTCP(p, d.tcp.Contents)
		if h := lastIP(p); h != nil && !h.Quoted && (d.tcp.SrcPort == 53 || d.tcp.DstPort == 53) {
			d.dns.overTCP = true
			return LayerTypeDNS, d.tcp.Payload
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeUDP:
		d.recordUDP(p, d.udp.Contents)
		return d.udpNext(p), d.udp.Payload
	case layers.LayerTypeSCTP:
		if h := lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoSCTP, SrcPort: uint16(d.sctp.SrcPort), DstPort: uint16(d.sctp.DstPort)}
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeICMPv4:
		t, c := d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
		if h := lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoICMP, ICMPType: t, ICMPCode: c}
		}
		switch t {
		case 3, 4, 5, 11, 12: // errors quote the offending datagram's header
			if !d.insideQuote(p) {
				d.quoteNext = true
				return layers.LayerTypeIPv4, d.icmp4.Payload
			}
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeICMPv6:
		t, c := d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
		if h := lastIP(p); h != nil {
			h.L4 = Transport{Proto: ProtoICMPv6, ICMPType: t, ICMPCode: c}
		}
		if t >= 1 && t <= 4 && len(d.icmp6.Payload) >= 4 && !d.insideQuote(p) {
			d.quoteNext = true
			return LayerTypeIPv6, d.icmp6.Payload[4:]
		}
		return gopacket.LayerTypePayload, nil
	case layers.LayerTypeVXLAN:
		if d.tunnel == TunnelNone {
			d.tunnel = TunnelVXLAN
		}
		return layers.LayerTypeEthernet, d.vxlan.Payload
	case LayerTypeGRE:
		if d.tunnel == TunnelNone {
			d.tunnel = TunnelGRE
		}
	case LayerTypeTeredo:
		if d.tunnel == TunnelNone {
			d.tunnel = TunnelTeredo
		}
	case LayerTypeDNS:
		if !p.HasDNS {
			p.HasDNS = true
			p.dnsLen = copy(p.dnsName[:], d.dns.name[:d.dns.nameLen])
		}
		return gopacket.LayerTypePayload, nil
	}
	return dl.NextLayerType(), dl.LayerPayload()
}

// udpNext picks what a UDP payload is by port, as tshark does for these protocols.
func (d *Decoder) udpNext(p *Packet) gopacket.LayerType {
	h := lastIP(p)
	if h == nil || h.Quoted || len(d.udp.Payload) == 0 {
		return gopacket.LayerTypePayload
	}
	s, t := d.udp.SrcPort, d.udp.DstPort
	switch {
	case t == 4789:
		return layers.LayerTypeVXLAN
	case s == 3544 || t == 3544:
		return LayerTypeTeredo
	case s == 53 || t == 53 || s == 5353 || t == 5353 || s == 5355 || t == 5355:
		d.dns.overTCP = false
		return LayerTypeDNS
	}
	return gopacket.LayerTypePayload
}

func (d *Decoder) recordTCP(p *Packet, hdr []byte) {
	h := lastIP(p)
	if h == nil {
		return
	}
	h.L4 = Transport{Proto: ProtoTCP}
	t := &h.L4
	if len(hdr) >= 4 {
		t.SrcPort, t.DstPort = be16(hdr[0:]), be16(hdr[2:])
	}
	if len(hdr) >= 8 {
		t.Seq = be32(hdr[4:])
	}
	if len(hdr) >= 12 {
		t.Ack = be32(hdr[8:])
	}
	if len(hdr) >= 14 {
		t.Flags = be16(hdr[12:]) & 0x0fff
		t.PayloadLen = h.TotalLen - h.HeaderLen - int(hdr[12]>>4)*4
	}
	if len(hdr) >= 16 {
		t.Window = be16(hdr[14:])
	}
}

func (d *Decoder) recordUDP(p *Packet, hdr []byte) {
	h := lastIP(p)
	if h == nil || len(hdr) < 4 {
		return
	}
	h.L4 = Transport{Proto: ProtoUDP, SrcPort: be16(hdr[0:]), DstPort: be16(hdr[2:])}
	if len(hdr) >= 6 {
		h.L4.UDPLen = be16(hdr[4:])
		h.L4.PayloadLen = max(int(h.L4.UDPLen)-8, 0)
	}
}

// recordPartial keeps the transport fields that precede the point where a header was cut,
// as tshark shows them.
func (d *Decoder) recordPartial(typ gopacket.LayerType, data []byte, p *Packet) {
	switch typ {
	case layers.LayerTypeTCP:
		d.recordTCP(p, data)
	case layers.LayerTypeUDP:
		d.recordUDP(p, data)
	}
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
