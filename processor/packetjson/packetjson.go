// Package packetjson writes one decoded packet as a JSON object keyed by tshark's field names
// (ip.ttl, tcp.checksum, udp.length, ...), each value formatted as `tshark -T fields -E
// occurrence=f` prints it, for consumers such as Spark or Elasticsearch that want parsed
// headers rather than frames. A field the packet lacks is left out, as tshark leaves it empty.
//
// Values come from the decoder's Packet where it keeps them and from the frame bytes at the
// offsets the decoder recorded where it does not (DSCP, checksums, urgent pointer, options):
// decoding stays as cheap as it is for the flow table, and the record costs only its writing.
package packetjson

import (
	"strconv"

	"capfleet.dev/capfleet/processor/decode"
)

// field is one record field. get appends the value's text as tshark prints it; ok is false
// when the packet has no such field.
type field struct {
	name    string
	numeric bool // JSON number rather than string
	get     func(dst []byte, n int, p *decode.Packet, frame []byte) ([]byte, bool)
}

// Fields lists the record's fields in the order they are written.
func Fields() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}

// Append appends the JSON record of packet p, the n-th of its source (frame.number; 0 leaves
// it out), decoded from frame. p must come from decoding frame; frame is only read. The record
// has no trailing newline. Append allocates nothing when dst has room.
func Append(dst []byte, n int, p *decode.Packet, frame []byte) []byte {
	dst = append(dst, '{')
	first := true
	for i := range fields {
		f := &fields[i]
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, f.name...)
		dst = append(dst, '"', ':')
		if !f.numeric {
			dst = append(dst, '"')
		}
		start := len(dst)
		var ok bool
		dst, ok = f.get(dst, n, p, frame)
		if !ok {
			dst = dst[:mark]
			continue
		}
		if !f.numeric {
			dst = escapeFrom(dst, start)
			dst = append(dst, '"')
		}
		first = false
	}
	return append(dst, '}')
}

// escapeFrom escapes for a JSON string what was appended from start on. Only a DNS name could
// carry such bytes; the fields here are hex, digits and addresses, so this normally copies nothing.
func escapeFrom(dst []byte, start int) []byte {
	for i := start; i < len(dst); i++ {
		if c := dst[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			tail := string(dst[i:])
			dst = dst[:i]
			for j := 0; j < len(tail); j++ {
				switch c := tail[j]; {
				case c == '"' || c == '\\':
					dst = append(dst, '\\', c)
				case c < 0x20 || c >= 0x7f:
					dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
				default:
					dst = append(dst, c)
				}
			}
			return dst
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendHex appends 0x and v in width hex digits, as tshark prints a BASE_HEX field of that size.
func appendHex(dst []byte, v uint64, width int) []byte {
	dst = append(dst, '0', 'x')
	for i := width - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(4*uint(i)))&15])
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

func u(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// firstIP is the first IP header of a version in wire order: tshark's first occurrence.
func firstIP(p *decode.Packet, version uint8) *decode.IPHeader {
	for i := 0; i < int(p.NIP); i++ {
		if p.IP[i].Version == version {
			return &p.IP[i]
		}
	}
	return nil
}

// firstL4 is the first transport header of a protocol in wire order.
func firstL4(p *decode.Packet, proto uint8) *decode.Transport {
	for i := 0; i < int(p.NIP); i++ {
		if p.IP[i].L4.Proto == proto {
			return &p.IP[i].L4
		}
	}
	return nil
}

// ipRaw is a field read from the frame bytes [Off, Off+end) of the first IP header of a
// version: absent when the header was cut before byte end, or when the offset does not point
// at that header (a defence: the bytes are checked for the version before any is used).
func ipRaw(version uint8, end int, get func(dst []byte, hdr []byte, h *decode.IPHeader) []byte) func([]byte, int, *decode.Packet, []byte) ([]byte, bool) {
	return func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
		h := firstIP(p, version)
		if h == nil || !h.Holds(end) || h.Off < 0 || h.Off+end > len(frame) || frame[h.Off]>>4 != version {
			return dst, false
		}
		return get(dst, frame[h.Off:], h), true
	}
}

// tcpRaw is a field of the first TCP header read from the frame, present when the header is
// whole up to its window (not cut short as an ICMP error quotes it, and with a sane offset).
func tcpRaw(end int, get func(dst []byte, hdr []byte) []byte) func([]byte, int, *decode.Packet, []byte) ([]byte, bool) {
	return func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
		t := firstL4(p, decode.ProtoTCP)
		if t == nil || t.Short || t.BadOffset || t.Off < 0 || t.Off+end > len(frame) {
			return dst, false
		}
		return get(dst, frame[t.Off:]), true
	}
}

// fromDecode reuses a field of the decoder's own table: the same text `capfleet pcap decode`
// prints, which its tshark parity test already checks.
func fromDecode(name string) field {
	fs, err := decode.LookupFields([]string{name})
	if err != nil {
		panic(err) // a field this package names is missing from decode: a build-time mistake
	}
	d := fs[0]
	return field{name: name, numeric: d.Numeric, get: func(dst []byte, n int, p *decode.Packet, _ []byte) ([]byte, bool) {
		return d.AppendFirst(dst, n, p)
	}}
}

func be16(b []byte) uint64 { return uint64(b[0])<<8 | uint64(b[1]) }

var fields []field

func init() {
	ip := func(end int, get func(dst, hdr []byte, h *decode.IPHeader) []byte) func([]byte, int, *decode.Packet, []byte) ([]byte, bool) {
		return ipRaw(4, end, get)
	}
	ip6 := func(end int, get func(dst, hdr []byte, h *decode.IPHeader) []byte) func([]byte, int, *decode.Packet, []byte) ([]byte, bool) {
		return ipRaw(6, end, get)
	}
	frameNumber := fromDecode("frame.number")
	frameNumber.get = func(dst []byte, n int, p *decode.Packet, frame []byte) ([]byte, bool) {
		if n <= 0 {
			return dst, false
		}
		return strconv.AppendInt(dst, int64(n), 10), true
	}
	fields = []field{
		frameNumber,
		fromDecode("frame.time_epoch"),
		fromDecode("frame.len"),
		fromDecode("frame.cap_len"),

		// tshark's IPv6 dissector sets ip.version too: it is the first IP header's, of either version.
		{"ip.version", true, func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
			if p.NIP == 0 || p.IP[0].Off >= len(frame) {
				return dst, false
			}
			return u(dst, uint64(frame[p.IP[0].Off]>>4)), true
		}},
		{"ip.hdr_len", true, ip(1, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, uint64(b[0]&15)*4) })},
		{"ip.dsfield.dscp", true, ip(2, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, uint64(b[1]>>2)) })},
		{"ip.dsfield.ecn", true, ip(2, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, uint64(b[1]&3)) })},
		fromDecode("ip.len"),
		// From the frame: the decoder leaves the id of a header cut short unset.
		{"ip.id", false, ip(6, func(dst, b []byte, _ *decode.IPHeader) []byte { return appendHex(dst, be16(b[4:]), 4) })},
		{"ip.flags", false, ip(7, func(dst, b []byte, _ *decode.IPHeader) []byte { return appendHex(dst, uint64(b[6]>>5), 2) })},
		// tshark prints the offset field as on the wire, in 8-byte units.
		{"ip.frag_offset", true, ip(8, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, be16(b[6:])&0x1fff) })},
		fromDecode("ip.ttl"),
		fromDecode("ip.proto"),
		{"ip.checksum", false, ip(12, func(dst, b []byte, _ *decode.IPHeader) []byte { return appendHex(dst, be16(b[10:]), 4) })},
		fromDecode("ip.src"),
		fromDecode("ip.dst"),
		// IP options have no one bytes field in tshark; ip.opt.type with occurrence=f is the
		// type of the first option of the first IPv4 header that has options.
		{"ip.opt.type", true, func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
			for i := 0; i < int(p.NIP); i++ {
				h := &p.IP[i]
				// The IHL from the header itself: HeaderLen counts an AH header after it too.
				if h.Version != 4 || h.Partial != 0 || h.Off+21 > len(frame) || frame[h.Off]>>4 != 4 || frame[h.Off]&15 <= 5 {
					continue
				}
				return u(dst, uint64(frame[h.Off+20])), true
			}
			return dst, false
		}},

		{"ipv6.version", true, ip6(1, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, uint64(b[0]>>4)) })},
		{"ipv6.tclass", false, ip6(2, func(dst, b []byte, _ *decode.IPHeader) []byte { return appendHex(dst, be16(b)>>4&0xff, 8) })},
		{"ipv6.tclass.dscp", true, ip6(2, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, be16(b)>>6&0x3f) })},
		{"ipv6.tclass.ecn", true, ip6(2, func(dst, b []byte, _ *decode.IPHeader) []byte { return u(dst, be16(b)>>4&3) })},
		{"ipv6.flow", false, ip6(4, func(dst, b []byte, _ *decode.IPHeader) []byte {
			return appendHex(dst, uint64(b[1]&15)<<16|be16(b[2:]), 6)
		})},
		fromDecode("ipv6.plen"),
		fromDecode("ipv6.nxt"),
		fromDecode("ipv6.hlim"),
		fromDecode("ipv6.src"),
		fromDecode("ipv6.dst"),

		fromDecode("tcp.srcport"),
		fromDecode("tcp.dstport"),
		fromDecode("tcp.seq_raw"),
		fromDecode("tcp.ack_raw"),
		{"tcp.hdr_len", true, tcpRaw(13, func(dst, b []byte) []byte { return u(dst, uint64(b[12]>>4)*4) })},
		fromDecode("tcp.flags"),
		fromDecode("tcp.window_size_value"),
		{"tcp.checksum", false, tcpRaw(18, func(dst, b []byte) []byte { return appendHex(dst, be16(b[16:]), 4) })},
		{"tcp.urgent_pointer", true, tcpRaw(20, func(dst, b []byte) []byte { return u(dst, be16(b[18:])) })},
		// The options as far as the IP datagram and the capture hold them, as tshark shows them
		// for a header cut by fragmentation.
		{"tcp.options", false, func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
			for i := 0; i < int(p.NIP); i++ {
				h := &p.IP[i]
				t := &h.L4
				if t.Proto != decode.ProtoTCP {
					continue
				}
				if t.Short || t.BadOffset || t.Off+20 > len(frame) {
					return dst, false
				}
				end := min(t.Off+int(frame[t.Off+12]>>4)*4, len(frame))
				if h.TotalLen > 0 {
					end = min(end, h.Off+h.TotalLen)
				}
				if end <= t.Off+20 {
					return dst, false
				}
				return appendBytes(dst, frame[t.Off+20:end]), true
			}
			return dst, false
		}},
		fromDecode("tcp.len"),

		fromDecode("udp.srcport"),
		fromDecode("udp.dstport"),
		fromDecode("udp.length"),
		{"udp.checksum", false, func(dst []byte, _ int, p *decode.Packet, frame []byte) ([]byte, bool) {
			t := firstL4(p, decode.ProtoUDP)
			if t == nil || t.Off+8 > len(frame) {
				return dst, false
			}
			return appendHex(dst, be16(frame[t.Off+6:]), 4), true
		}},
	}
}
