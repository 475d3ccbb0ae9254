package decode

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Field is one per-packet value named and formatted as tshark's `-T fields -e NAME` prints it,
// so that output can be compared with tshark line by line. When a field occurs more than once
// in a frame (tunnels, ICMP errors quoting a header) the first occurrence is used, as with
// tshark's `-E occurrence=f`.
type Field struct {
	Name string
	// Numeric is true when JSON should carry the value as a number.
	Numeric bool
	// Append appends the value to dst; ok is false, and dst unchanged, when the frame has no
	// such field.
	Append func(dst []byte, number int, p *Packet) (out []byte, ok bool)
}

// DefaultFields are printed when the user names none.
var DefaultFields = []string{
	"frame.number", "frame.time_epoch", "frame.len", "eth.src", "eth.dst", "vlan.id",
	"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "tcp.srcport", "tcp.dstport",
	"tcp.flags", "udp.srcport", "udp.dstport", "dns.qry.name",
}

var fields = map[string]Field{}

func reg(name string, numeric bool, f func(dst []byte, number int, p *Packet) ([]byte, bool)) {
	fields[name] = Field{Name: name, Numeric: numeric, Append: f}
}

// LookupFields resolves field names, with an error listing the known ones for a bad name.
func LookupFields(names []string) ([]Field, error) {
	out := make([]Field, 0, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		f, ok := fields[n]
		if !ok {
			return nil, fmt.Errorf("unknown field %q; known fields: %s", n, strings.Join(FieldNames(), ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// FieldNames lists every supported field, sorted.
func FieldNames() []string { return slices.Sorted(maps.Keys(fields)) }

// firstIP is the first IP header of the given version, in wire order.
func firstIP(p *Packet, version uint8) *IPHeader {
	for i := 0; i < int(p.NIP); i++ {
		if p.IP[i].Version == version {
			return &p.IP[i]
		}
	}
	return nil
}

// firstL4 is the first transport header of the given protocol, in wire order.
func firstL4(p *Packet, proto uint8) *Transport {
	for i := 0; i < int(p.NIP); i++ {
		if p.IP[i].L4.Proto == proto {
			return &p.IP[i].L4
		}
	}
	return nil
}

func appendMAC(dst []byte, m [6]byte) []byte {
	for i, b := range m {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

// appendHex appends 0x and v in at least width hex digits, as tshark prints BASE_HEX fields.
func appendHex(dst []byte, v uint64, width int) []byte {
	dst = append(dst, '0', 'x')
	var buf [16]byte
	n := 0
	for v > 0 || n < width {
		buf[n] = hexDigits[v&15]
		v >>= 4
		n++
	}
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, buf[i])
	}
	return dst
}

// ipField is a field of the first IP header of a version, ending at byte `end` of the header:
// absent when the header was cut before it.
func ipField(version uint8, end int, get func(dst []byte, h *IPHeader) []byte) func([]byte, int, *Packet) ([]byte, bool) {
	return func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		h := firstIP(p, version)
		if h == nil || !h.Holds(end) {
			return dst, false
		}
		return get(dst, h), true
	}
}

func l4Field(proto uint8, get func(dst []byte, t *Transport) []byte) func([]byte, int, *Packet) ([]byte, bool) {
	return func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		t := firstL4(p, proto)
		if t == nil {
			return dst, false
		}
		return get(dst, t), true
	}
}

// tcpHeaderField is a TCP field after the data offset, absent when the offset is bogus.
func tcpHeaderField(get func(dst []byte, t *Transport) []byte) func([]byte, int, *Packet) ([]byte, bool) {
	return func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		t := firstL4(p, ProtoTCP)
		if t == nil || t.BadOffset || t.Short {
			return dst, false
		}
		return get(dst, t), true
	}
}

func u(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

func init() {
	reg("frame.number", true, func(dst []byte, n int, p *Packet) ([]byte, bool) { return strconv.AppendInt(dst, int64(n), 10), true })
	reg("frame.time_epoch", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		ns := p.Timestamp.UnixNano()
		sec, frac := ns/1e9, ns%1e9
		if frac < 0 {
			sec, frac = sec-1, frac+1e9
		}
		dst = strconv.AppendInt(dst, sec, 10)
		dst = append(dst, '.')
		var b [9]byte
		for i := 8; i >= 0; i-- {
			b[i] = byte('0' + frac%10)
			frac /= 10
		}
		return append(dst, b[:]...), true
	})
	reg("frame.len", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) { return u(dst, uint64(p.Len)), true })
	reg("frame.cap_len", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) { return u(dst, uint64(p.CapLen)), true })

	reg("eth.src", false, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if !p.HasEth {
			return dst, false
		}
		return appendMAC(dst, p.EthSrc), true
	})
	reg("eth.dst", false, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if !p.HasEth {
			return dst, false
		}
		return appendMAC(dst, p.EthDst), true
	})
	reg("eth.type", false, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if !p.HasEth || p.EthType == 0 {
			return dst, false
		}
		return appendHex(dst, uint64(p.EthType), 4), true
	})
	reg("vlan.id", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if p.NVLAN == 0 {
			return dst, false
		}
		return u(dst, uint64(p.VLAN[0])), true
	})
	reg("mpls.label", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if p.NMPLS == 0 {
			return dst, false
		}
		return u(dst, uint64(p.MPLSLabel)), true
	})

	for _, v := range []struct {
		prefix         string
		version        uint8
		srcEnd, dstEnd int
	}{{"ip", 4, 16, 20}, {"ipv6", 6, 24, 40}} {
		reg(v.prefix+".src", false, ipField(v.version, v.srcEnd, func(dst []byte, h *IPHeader) []byte { return h.Src.AppendTo(dst) }))
		reg(v.prefix+".dst", false, ipField(v.version, v.dstEnd, func(dst []byte, h *IPHeader) []byte { return h.Dst.AppendTo(dst) }))
	}
	reg("ip.proto", true, ipField(4, 10, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.NextHeader)) }))
	reg("ip.ttl", true, ipField(4, 9, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TTL)) }))
	reg("ip.len", true, ipField(4, 4, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TotalLen)) }))
	reg("ip.hdr_len", true, ipField(4, 1, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.HeaderLen)) }))
	reg("ip.id", false, ipField(4, 6, func(dst []byte, h *IPHeader) []byte { return appendHex(dst, uint64(h.ID), 4) }))
	reg("ip.frag_offset", true, ipField(4, 8, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.FragOffset)) }))
	reg("ipv6.nxt", true, ipField(6, 7, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.NextHeader)) }))
	reg("ipv6.hlim", true, ipField(6, 8, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TTL)) }))
	reg("ipv6.plen", true, ipField(6, 6, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TotalLen-40)) }))

	port := func(src bool) func(dst []byte, t *Transport) []byte {
		return func(dst []byte, t *Transport) []byte {
			if src {
				return u(dst, uint64(t.SrcPort))
			}
			return u(dst, uint64(t.DstPort))
		}
	}
	for _, v := range []struct {
		prefix string
		proto  uint8
	}{{"tcp", ProtoTCP}, {"udp", ProtoUDP}, {"sctp", ProtoSCTP}} {
		reg(v.prefix+".srcport", true, l4Field(v.proto, port(true)))
		reg(v.prefix+".dstport", true, l4Field(v.proto, port(false)))
	}
	reg("tcp.flags", false, tcpHeaderField(func(dst []byte, t *Transport) []byte { return appendHex(dst, uint64(t.Flags), 4) }))
	reg("tcp.seq_raw", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		for i := 0; i < int(p.NIP); i++ {
			if h := &p.IP[i]; h.L4.Proto == ProtoTCP {
				if h.L4.Short {
					return dst, false
				}
				return u(dst, uint64(h.L4.Seq)), true
			}
		}
		return dst, false
	})
	reg("tcp.ack_raw", true, tcpHeaderField(func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.Ack)) }))
	reg("tcp.len", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		// tshark leaves tcp.len out for a header quoted in an ICMP error, in an IP fragment,
		// or with a bad data offset.
		for i := 0; i < int(p.NIP); i++ {
			if h := &p.IP[i]; h.L4.Proto == ProtoTCP {
				if h.Quoted || h.Fragment || h.L4.PayloadLen < 0 {
					return dst, false
				}
				return strconv.AppendInt(dst, int64(h.L4.PayloadLen), 10), true
			}
		}
		return dst, false
	})
	reg("tcp.window_size_value", true, tcpHeaderField(func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.Window)) }))
	reg("udp.length", true, l4Field(ProtoUDP, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.UDPLen)) }))
	reg("icmp.type", true, l4Field(ProtoICMP, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPType)) }))
	reg("icmp.code", true, l4Field(ProtoICMP, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPCode)) }))
	reg("icmpv6.type", true, l4Field(ProtoICMPv6, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPType)) }))
	reg("icmpv6.code", true, l4Field(ProtoICMPv6, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPCode)) }))
	reg("dns.qry.name", false, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if !p.HasDNS || p.dnsLen == 0 {
			return dst, false
		}
		return append(dst, p.DNSName()...), true
	})
}
