package decode

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Field is one per-packet value named and formatted as tshark's `-T fields -e NAME` prints it,
// so that output can be compared with tshark line by line. When a field occurs more than once
// in a frame (tunnels, ICMP errors quoting a header) every occurrence is shown in wire order, as
// with tshark's `-E occurrence=a`.
type Field struct {
	Name string
	// Numeric is true when JSON should carry the value as a number.
	Numeric bool
	each    appendFunc
}

// appendFunc appends every occurrence of a field in a frame, separated by sep, and says how many.
type appendFunc func(dst []byte, number int, p *Packet, sep byte) (out []byte, n int)

// Aggregator separates the occurrences of a field, as tshark's default `-E aggregator=,`.
const Aggregator = ','

// Append appends every occurrence of the field separated by Aggregator; ok is false, and dst
// unchanged, when the frame has no such field.
func (f Field) Append(dst []byte, number int, p *Packet) (out []byte, ok bool) {
	out, n := f.each(dst, number, p, Aggregator)
	return out, n > 0
}

// AppendFirst appends the field's first occurrence only, as tshark's `-E occurrence=f` prints it
// (a packet record holds one value per field).
func (f Field) AppendFirst(dst []byte, number int, p *Packet) (out []byte, ok bool) {
	start := len(dst)
	// NUL separates occurrences here: no field's text holds one.
	out, n := f.each(dst, number, p, 0)
	if n == 0 {
		return dst, false
	}
	if i := bytes.IndexByte(out[start:], 0); i >= 0 {
		out = out[:start+i]
	}
	return out, true
}

// AppendSep appends every occurrence of the field separated by sep (for a caller that must tell
// them apart whatever they hold) and returns how many there were.
func (f Field) AppendSep(dst []byte, number int, p *Packet, sep byte) (out []byte, n int) {
	return f.each(dst, number, p, sep)
}

// DefaultFields are printed when the user names none.
var DefaultFields = []string{
	"frame.number", "frame.time_epoch", "frame.len", "eth.src", "eth.dst", "vlan.id",
	"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "tcp.srcport", "tcp.dstport",
	"tcp.flags", "udp.srcport", "udp.dstport", "dns.qry.name",
}

var fields = map[string]Field{}

// reg registers a field that occurs at most once in a frame.
func reg(name string, numeric bool, f func(dst []byte, number int, p *Packet) ([]byte, bool)) {
	fields[name] = Field{Name: name, Numeric: numeric, each: func(dst []byte, number int, p *Packet, _ byte) ([]byte, int) {
		out, ok := f(dst, number, p)
		if !ok {
			return dst, 0
		}
		return out, 1
	}}
}

// regAll registers a field that may occur more than once in a frame.
func regAll(name string, numeric bool, f appendFunc) {
	fields[name] = Field{Name: name, Numeric: numeric, each: f}
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

// sepIf appends the separator before every occurrence but the first.
func sepIf(dst []byte, n int, sep byte) []byte {
	if n > 0 {
		return append(dst, sep)
	}
	return dst
}

// ipField is a field of every IP header of a version, ending at byte `end` of the header: absent
// from a header cut before it.
func ipField(version uint8, end int, get func(dst []byte, h *IPHeader) []byte) appendFunc {
	return func(dst []byte, _ int, p *Packet, sep byte) ([]byte, int) {
		n := 0
		for i := 0; i < int(p.NIP); i++ {
			if h := &p.IP[i]; h.Version == version && h.Holds(end) {
				dst = get(sepIf(dst, n, sep), h)
				n++
			}
		}
		return dst, n
	}
}

// l4Field is a field of every transport header of a protocol that `has` accepts.
func l4Field(proto uint8, has func(h *IPHeader) bool, get func(dst []byte, t *Transport) []byte) appendFunc {
	return func(dst []byte, _ int, p *Packet, sep byte) ([]byte, int) {
		n := 0
		for i := 0; i < int(p.NIP); i++ {
			if h := &p.IP[i]; h.L4.Proto == proto && (has == nil || has(h)) {
				dst = get(sepIf(dst, n, sep), &h.L4)
				n++
			}
		}
		return dst, n
	}
}

// tcpHeader: the TCP fields after the data offset, absent when the offset is bogus or the header cut.
func tcpHeader(h *IPHeader) bool { return !h.L4.BadOffset && !h.L4.Short }

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

	eth := func(get func(dst []byte, e *EthHeader) []byte, has func(e *EthHeader) bool) appendFunc {
		return func(dst []byte, _ int, p *Packet, sep byte) ([]byte, int) {
			n := 0
			for i := 0; i < int(p.NEth); i++ {
				if e := &p.Eths[i]; has == nil || has(e) {
					dst = get(sepIf(dst, n, sep), e)
					n++
				}
			}
			return dst, n
		}
	}
	regAll("eth.src", false, eth(func(dst []byte, e *EthHeader) []byte { return appendMAC(dst, e.Src) }, nil))
	regAll("eth.dst", false, eth(func(dst []byte, e *EthHeader) []byte { return appendMAC(dst, e.Dst) }, nil))
	regAll("eth.type", false, eth(func(dst []byte, e *EthHeader) []byte { return appendHex(dst, uint64(e.Type), 4) },
		func(e *EthHeader) bool { return e.Type != 0 }))
	regAll("vlan.id", true, func(dst []byte, _ int, p *Packet, sep byte) ([]byte, int) {
		n := 0
		for i := 0; i < int(p.NTags); i++ {
			if t := &p.Tags[i]; vlanTPID(t.TPID) {
				dst = u(sepIf(dst, n, sep), uint64(t.ID))
				n++
			}
		}
		return dst, n
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
		regAll(v.prefix+".src", false, ipField(v.version, v.srcEnd, func(dst []byte, h *IPHeader) []byte { return h.Src.AppendTo(dst) }))
		regAll(v.prefix+".dst", false, ipField(v.version, v.dstEnd, func(dst []byte, h *IPHeader) []byte { return h.Dst.AppendTo(dst) }))
	}
	regAll("ip.proto", true, ipField(4, 10, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.NextHeader)) }))
	regAll("ip.ttl", true, ipField(4, 9, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TTL)) }))
	regAll("ip.len", true, ipField(4, 4, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TotalLen)) }))
	regAll("ip.hdr_len", true, ipField(4, 1, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.HeaderLen)) }))
	regAll("ip.id", false, ipField(4, 6, func(dst []byte, h *IPHeader) []byte { return appendHex(dst, uint64(h.ID), 4) }))
	regAll("ip.frag_offset", true, ipField(4, 8, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.FragOffset)) }))
	regAll("ipv6.nxt", true, ipField(6, 7, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.NextHeader)) }))
	regAll("ipv6.hlim", true, ipField(6, 8, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TTL)) }))
	regAll("ipv6.plen", true, ipField(6, 6, func(dst []byte, h *IPHeader) []byte { return u(dst, uint64(h.TotalLen-40)) }))

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
		regAll(v.prefix+".srcport", true, l4Field(v.proto, nil, port(true)))
		regAll(v.prefix+".dstport", true, l4Field(v.proto, nil, port(false)))
	}
	regAll("tcp.flags", false, l4Field(ProtoTCP, tcpHeader, func(dst []byte, t *Transport) []byte { return appendHex(dst, uint64(t.Flags), 4) }))
	regAll("tcp.seq_raw", true, l4Field(ProtoTCP, func(h *IPHeader) bool { return !h.L4.Short },
		func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.Seq)) }))
	regAll("tcp.ack_raw", true, l4Field(ProtoTCP, tcpHeader, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.Ack)) }))
	// tshark leaves tcp.len out for a header quoted in an ICMP error, in an IP fragment, or with
	// a bad data offset.
	regAll("tcp.len", true, l4Field(ProtoTCP, func(h *IPHeader) bool { return !h.Quoted && !h.Fragment && h.L4.PayloadLen >= 0 },
		func(dst []byte, t *Transport) []byte { return strconv.AppendInt(dst, int64(t.PayloadLen), 10) }))
	regAll("tcp.window_size_value", true, l4Field(ProtoTCP, tcpHeader, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.Window)) }))
	regAll("udp.length", true, l4Field(ProtoUDP, nil, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.UDPLen)) }))
	regAll("icmp.type", true, l4Field(ProtoICMP, nil, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPType)) }))
	regAll("icmp.code", true, l4Field(ProtoICMP, nil, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPCode)) }))
	regAll("icmpv6.type", true, l4Field(ProtoICMPv6, nil, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPType)) }))
	regAll("icmpv6.code", true, l4Field(ProtoICMPv6, nil, func(dst []byte, t *Transport) []byte { return u(dst, uint64(t.ICMPCode)) }))
	regAll("dns.qry.name", false, func(dst []byte, _ int, p *Packet, sep byte) ([]byte, int) {
		if !p.HasDNS || p.dnsLen == 0 {
			return dst, 0
		}
		n := 1
		for _, c := range p.DNSNames() {
			if c == 0 {
				c = sep
				n++
			}
			dst = append(dst, c)
		}
		return dst, n
	})
}

// vlanTPID says whether tshark's vlan dissector shows a tag announced by this EtherType; 802.1ad
// tags (0x88a8) are its ieee8021ad's.
func vlanTPID(tpid uint16) bool { return tpid != 0x88a8 }
