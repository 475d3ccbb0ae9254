package decode

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
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
	// code names a field that appendFields formats itself (the ones a decode line prints for every
	// packet); each formats the others.
	code fieldCode
	each appendFunc
}

// fieldCode is a field appendFields formats in its switch rather than through a closure: the default
// fields, which `pcap decode` prints for every packet, where a call through a closure per field and
// strconv's copy through a scratch buffer per number were most of its time.
type fieldCode uint8

const (
	viaEach fieldCode = iota // formatted by Field.each
	codeFrameNumber
	codeTimeEpoch
	codeFrameLen
	codeEthSrc
	codeEthDst
	codeVLANID
	codeIPSrc // the four address fields in ipAddrFields' order
	codeIPDst
	codeIPv6Src
	codeIPv6Dst
	codeIPProto
	codeTCPSrcPort // the four port fields in portFields' order
	codeTCPDstPort
	codeUDPSrcPort
	codeUDPDstPort
	codeTCPFlags
	codeDNSQryName
)

// ipAddrFields are the address fields codeIPSrc to codeIPv6Dst: the IP version they are of, and the
// byte of the header they end at (absent from a header cut before it).
var ipAddrFields = [4]struct {
	version uint8
	end     int
	dst     bool
}{{4, 16, false}, {4, 20, true}, {6, 24, false}, {6, 40, true}}

// portFields are the port fields codeTCPSrcPort to codeUDPDstPort.
var portFields = [4]struct {
	proto uint8
	dst   bool
}{{ProtoTCP, false}, {ProtoTCP, true}, {ProtoUDP, false}, {ProtoUDP, true}}

// appendFields appends the fields fs of a frame, a tab between two fields, each field's
// occurrences separated by sep, and returns how many occurrences the last field had. The fields
// of the default list are formatted here, in one loop over the list: a call through a closure per
// field was most of a decode line's time.
func appendFields(dst []byte, fs []Field, number int, p *Packet, sep byte) (out []byte, n int) {
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			dst = append(dst, '\t')
		}
		n = 0
		switch f.code {
		case viaEach:
			dst, n = f.each(dst, number, p, sep)
		case codeFrameNumber:
			dst, n = appendInt(dst, int64(number)), 1
		case codeTimeEpoch:
			dst, n = appendEpoch(dst, p), 1
		case codeFrameLen:
			dst, n = appendUint(dst, uint64(p.Len)), 1
		case codeEthSrc, codeEthDst:
			for j := 0; j < int(p.NEth); j++ {
				e := &p.Eths[j]
				if n > 0 {
					dst = append(dst, sep)
				}
				if f.code == codeEthSrc {
					dst = appendMAC(dst, &e.Src)
				} else {
					dst = appendMAC(dst, &e.Dst)
				}
				n++
			}
		case codeVLANID:
			for j := 0; j < int(p.NTags); j++ {
				if t := &p.Tags[j]; vlanTPID(t.TPID) {
					if n > 0 {
						dst = append(dst, sep)
					}
					dst = appendUint(dst, uint64(t.ID))
					n++
				}
			}
		case codeIPSrc, codeIPDst, codeIPv6Src, codeIPv6Dst:
			a := &ipAddrFields[f.code-codeIPSrc]
			for j := 0; j < int(p.NIP); j++ {
				if h := &p.IP[j]; h.Version == a.version && h.Holds(a.end) {
					if n > 0 {
						dst = append(dst, sep)
					}
					if a.dst {
						dst = appendAddr(dst, h.Dst)
					} else {
						dst = appendAddr(dst, h.Src)
					}
					n++
				}
			}
		case codeIPProto:
			for j := 0; j < int(p.NIP); j++ {
				if h := &p.IP[j]; h.Version == 4 && h.Holds(10) {
					if n > 0 {
						dst = append(dst, sep)
					}
					dst = appendUint(dst, uint64(h.NextHeader))
					n++
				}
			}
		case codeTCPSrcPort, codeTCPDstPort, codeUDPSrcPort, codeUDPDstPort:
			pf := &portFields[f.code-codeTCPSrcPort]
			for j := 0; j < int(p.NIP); j++ {
				if t := &p.IP[j].L4; t.Proto == pf.proto {
					if n > 0 {
						dst = append(dst, sep)
					}
					if pf.dst {
						dst = appendUint(dst, uint64(t.DstPort))
					} else {
						dst = appendUint(dst, uint64(t.SrcPort))
					}
					n++
				}
			}
		case codeTCPFlags:
			for j := 0; j < int(p.NIP); j++ {
				if h := &p.IP[j]; h.L4.Proto == ProtoTCP && tcpHeader(h) {
					if n > 0 {
						dst = append(dst, sep)
					}
					dst = appendHex(dst, uint64(h.L4.Flags), 4)
					n++
				}
			}
		case codeDNSQryName:
			if !p.HasDNS || p.dnsLen == 0 {
				break
			}
			// The names, NUL between them, become the occurrences, sep between them.
			names := p.dnsName[:p.dnsLen]
			start := len(dst)
			dst = append(dst, names...)
			n = 1
			for j, c := range names {
				if c == 0 {
					dst[start+j] = sep
					n++
				}
			}
		}
	}
	return dst, n
}

// AppendTSV appends the fields of a frame as one line of `tshark -T fields -E separator=/t -E
// occurrence=a`: tab-separated, occurrences separated by Aggregator, an absent field empty.
func AppendTSV(dst []byte, fs []Field, number int, p *Packet) []byte {
	dst, _ = appendFields(dst, fs, number, p, Aggregator)
	return append(dst, '\n')
}

// appendSep appends every occurrence of the field separated by sep and says how many there were.
func (f Field) appendSep(dst []byte, number int, p *Packet, sep byte) ([]byte, int) {
	one := [1]Field{f}
	return appendFields(dst, one[:], number, p, sep)
}

// appendFunc appends every occurrence of a field in a frame, separated by sep, and says how many.
type appendFunc func(dst []byte, number int, p *Packet, sep byte) (out []byte, n int)

// Aggregator separates the occurrences of a field, as tshark's default `-E aggregator=,`.
const Aggregator = ','

// Append appends every occurrence of the field separated by Aggregator; ok is false, and dst
// unchanged, when the frame has no such field.
func (f Field) Append(dst []byte, number int, p *Packet) (out []byte, ok bool) {
	out, n := f.appendSep(dst, number, p, Aggregator)
	return out, n > 0
}

// AppendFirst appends the field's first occurrence only, as tshark's `-E occurrence=f` prints it
// (a packet record holds one value per field).
func (f Field) AppendFirst(dst []byte, number int, p *Packet) (out []byte, ok bool) {
	start := len(dst)
	// NUL separates occurrences here: no field's text holds one.
	out, n := f.appendSep(dst, number, p, 0)
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
	return f.appendSep(dst, number, p, sep)
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

// regCode registers a field that appendFields formats.
func regCode(name string, numeric bool, code fieldCode) {
	fields[name] = Field{Name: name, Numeric: numeric, code: code}
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

// appendMAC appends a MAC address as tshark prints it: six lower-case hex pairs, colons between.
func appendMAC(dst []byte, m *[6]byte) []byte {
	h := &hexPairs
	return append(dst,
		h[m[0]][0], h[m[0]][1], ':', h[m[1]][0], h[m[1]][1], ':', h[m[2]][0], h[m[2]][1], ':',
		h[m[3]][0], h[m[3]][1], ':', h[m[4]][0], h[m[4]][1], ':', h[m[5]][0], h[m[5]][1])
}

// hexPairs holds the two lower-case hex digits of every byte value.
var hexPairs = func() (t [256][2]byte) {
	for i := range t {
		t[i] = [2]byte{hexDigits[i>>4], hexDigits[i&15]}
	}
	return t
}()

// appendHex appends 0x and v in at least width hex digits, as tshark prints BASE_HEX fields.
func appendHex(dst []byte, v uint64, width int) []byte {
	if width == 4 && v <= 0xffff {
		return append(dst, '0', 'x', hexDigits[v>>12], hexDigits[v>>8&15], hexDigits[v>>4&15], hexDigits[v&15])
	}
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

// digitPairs holds the two decimal digits of 0 to 99.
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendUint appends v in decimal, as strconv.AppendUint(dst, v, 10) does: written in place, two
// digits at a time, where strconv formats into a buffer of its own and copies.
func appendUint(dst []byte, v uint64) []byte {
	if v < 1e4 {
		return appendUpTo4(dst, uint32(v))
	}
	if v < 1e8 {
		return append4(appendUpTo4(dst, uint32(v)/1e4), uint32(v)%1e4)
	}
	dst = appendUint(dst, v/1e8)
	lo := uint32(v % 1e8)
	return append4(append4(dst, lo/1e4), lo%1e4)
}

// appendUpTo4 appends v, below 10,000, in decimal.
func appendUpTo4(dst []byte, v uint32) []byte {
	switch {
	case v < 10:
		return append(dst, byte('0'+v))
	case v < 100:
		return append(dst, digitPairs[2*v], digitPairs[2*v+1])
	case v < 1000:
		q, r := v/100, v%100
		return append(dst, byte('0'+q), digitPairs[2*r], digitPairs[2*r+1])
	}
	q, r := v/100, v%100
	return append(dst, digitPairs[2*q], digitPairs[2*q+1], digitPairs[2*r], digitPairs[2*r+1])
}

// append4 appends v, below 10,000, in four decimal digits (zero-padded).
func append4(dst []byte, v uint32) []byte {
	q, r := v/100, v%100
	return append(dst, digitPairs[2*q], digitPairs[2*q+1], digitPairs[2*r], digitPairs[2*r+1])
}

// appendInt appends v in decimal, as strconv.AppendInt(dst, v, 10) does.
func appendInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(dst, uint64(v))
	}
	return strconv.AppendInt(dst, v, 10)
}

// appendEpoch appends frame.time_epoch: seconds since the epoch, a dot and nine digits of nanoseconds.
func appendEpoch(dst []byte, p *Packet) []byte {
	ns := p.Timestamp.UnixNano()
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	dst = appendInt(dst, sec)
	f := uint32(frac)
	hi, lo := f/1e8, f%1e8 // 1 and 8 digits
	dst = append(dst, '.', byte('0'+hi))
	return append4(append4(dst, lo/1e4), lo%1e4)
}

// appendAddr appends an address as netip.Addr.AppendTo does; IPv4 ones are written here.
func appendAddr(dst []byte, a netip.Addr) []byte {
	if !a.Is4() {
		return a.AppendTo(dst)
	}
	q := a.As4()
	dst = appendOctet(dst, q[0])
	dst = appendOctet(append(dst, '.'), q[1])
	dst = appendOctet(append(dst, '.'), q[2])
	return appendOctet(append(dst, '.'), q[3])
}

// appendOctet appends a byte in decimal.
func appendOctet(dst []byte, o byte) []byte {
	switch {
	case o < 10:
		return append(dst, '0'+o)
	case o < 100:
		return append(dst, digitPairs[2*int(o)], digitPairs[2*int(o)+1])
	}
	r := o % 100
	return append(dst, '0'+o/100, digitPairs[2*int(r)], digitPairs[2*int(r)+1])
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

func u(dst []byte, v uint64) []byte { return appendUint(dst, v) }

func init() {
	regCode("frame.number", true, codeFrameNumber)
	regCode("frame.time_epoch", true, codeTimeEpoch)
	regCode("frame.len", true, codeFrameLen)
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
	regCode("eth.src", false, codeEthSrc)
	regCode("eth.dst", false, codeEthDst)
	regAll("eth.type", false, eth(func(dst []byte, e *EthHeader) []byte { return appendHex(dst, uint64(e.Type), 4) },
		func(e *EthHeader) bool { return e.Type != 0 }))
	regCode("vlan.id", true, codeVLANID)
	reg("mpls.label", true, func(dst []byte, _ int, p *Packet) ([]byte, bool) {
		if p.NMPLS == 0 {
			return dst, false
		}
		return u(dst, uint64(p.MPLSLabel)), true
	})

	regCode("ip.src", false, codeIPSrc)
	regCode("ip.dst", false, codeIPDst)
	regCode("ipv6.src", false, codeIPv6Src)
	regCode("ipv6.dst", false, codeIPv6Dst)
	regCode("ip.proto", true, codeIPProto)
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
	regCode("tcp.srcport", true, codeTCPSrcPort)
	regCode("tcp.dstport", true, codeTCPDstPort)
	regCode("udp.srcport", true, codeUDPSrcPort)
	regCode("udp.dstport", true, codeUDPDstPort)
	regCode("tcp.flags", false, codeTCPFlags)
	regAll("sctp.srcport", true, l4Field(ProtoSCTP, nil, port(true)))
	regAll("sctp.dstport", true, l4Field(ProtoSCTP, nil, port(false)))
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
	regCode("dns.qry.name", false, codeDNSQryName)
}

// vlanTPID says whether tshark's vlan dissector shows a tag announced by this EtherType; 802.1ad
// tags (0x88a8) are its ieee8021ad's.
func vlanTPID(tpid uint16) bool { return tpid != 0x88a8 }
