// Package displayfilter compiles Wireshark display filters (the language of tshark -Y) over the
// fields the decoder names as tshark does, and evaluates them on decoded packets without
// allocating. Field semantics follow tshark 4.0: a relation holds when any occurrence of the field
// satisfies it, except "!=" ("all_ne") and "===" ("all_eq"), which need every occurrence to, and a
// relation on an absent field is false.
package displayfilter

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"capfleet.dev/capfleet/processor/decode"
)

// Filter is a compiled display filter. It is immutable, so one Filter may be shared by
// goroutines.
type Filter struct {
	m       matcher[decode.Packet]
	text    string
	payload bool
}

// Compile parses and type-checks a filter. The error is an *Error with the class and place.
func Compile(text string) (*Filter, error) {
	f, err := compile(text)
	if err != nil {
		err.Filter = text
		return nil, err
	}
	return f, nil
}

func compile(text string) (*Filter, *Error) {
	ast, err := parse(text)
	if err != nil {
		return nil, err
	}
	c := &compiler[decode.Packet]{fields: fields}
	m, err := c.expr(ast)
	if err != nil {
		return nil, err
	}
	return &Filter{m: m, text: text, payload: c.payload}, nil
}

// Match says whether the decoded packet, the frame-th of its capture (counted from 1, as
// frame.number), passes. A nil Filter passes everything.
func (f *Filter) Match(p *decode.Packet, frame int) bool {
	if f == nil {
		return true
	}
	return f.m.match(p, frame)
}

// NeedsPayload is false when the filter reads header fields only, so the decoder may stop at
// the transport header (decode.Decoder.HeadersOnly).
func (f *Filter) NeedsPayload() bool { return f != nil && f.payload }

func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

// compiler turns a parsed filter into matchers over records of type T, with T's fields.
type compiler[T any] struct {
	fields  map[string]*field[T]
	payload bool // a field read needs the payload
	// floats lets integer fields take values such as 1e6 and times take exponents, which tshark
	// refuses but flow filters (byte counts, durations) read better with.
	floats bool
}

func (c *compiler[T]) expr(e exprNode) (matcher[T], *Error) {
	switch e := e.(type) {
	case andExpr:
		a, b, err := c.both(e.a, e.b)
		if err != nil {
			return nil, err
		}
		return &andM[T]{a, b}, nil
	case orExpr:
		a, b, err := c.both(e.a, e.b)
		if err != nil {
			return nil, err
		}
		return &orM[T]{a, b}, nil
	case notExpr:
		x, err := c.expr(e.x)
		if err != nil {
			return nil, err
		}
		return &notM[T]{x}, nil
	case testExpr:
		return c.test(e)
	}
	panic("displayfilter: unknown node")
}

// both compiles the operands of "and" and "or".
func (c *compiler[T]) both(a, b exprNode) (matcher[T], matcher[T], *Error) {
	ma, err := c.expr(a)
	if err != nil {
		return nil, nil, err
	}
	mb, err := c.expr(b)
	if err != nil {
		return nil, nil, err
	}
	return ma, mb, nil
}

// fieldOf resolves an operand that must name a field; what says where it stands, for the message.
func (c *compiler[T]) fieldOf(o operand, what string) (*field[T], layers, *Error) {
	t := o.tok
	if t.kind != tWord {
		return nil, layers{}, errAt(ClassUnknownField, t.pos, t.end, "%s must be a field, not %s", what, t.text)
	}
	f := c.fields[t.text]
	if f == nil {
		return nil, layers{}, errAt(ClassUnknownField, t.pos, t.end, "%q is neither a field nor a protocol name that capfleet decodes", t.text)
	}
	c.payload = c.payload || f.payload
	var l layers
	if o.layer != nil {
		if o.layer.lo < 1 || o.layer.hi < o.layer.lo {
			// tshark counts layers from 1: #0 or an empty range selects nothing.
			l = layers{lo: math.MaxInt, hi: math.MaxInt}
		} else {
			l = layers{lo: o.layer.lo, hi: o.layer.hi}
		}
	}
	return f, l, nil
}

func (c *compiler[T]) test(t testExpr) (matcher[T], *Error) {
	if !t.hasOp {
		if t.lhs.tok.kind != tWord {
			return nil, errAt(ClassUnknownField, t.lhs.tok.pos, t.lhs.tok.end, "%s is neither a field nor a protocol name", t.lhs.tok.text)
		}
		f, l, err := c.fieldOf(t.lhs, "a test")
		if err != nil {
			return nil, err
		}
		if t.lhs.mask != nil {
			// "tcp.flags & 0x02" on its own: any occurrence with a bit of the mask set.
			if f.kind != kUint {
				return nil, typeCannot(f, t.lhs.tok, "&")
			}
			mask, err := c.uintLit(f, *t.lhs.mask)
			if err != nil {
				return nil, err
			}
			return &numM[T]{get: f.num, l: l, mask: mask, op: opAnyNe, x: 0}, nil
		}
		return &presentM[T]{f: f, l: l}, nil
	}
	f, l, err := c.fieldOf(t.lhs, fmt.Sprintf("the left side of %q", t.op.text))
	if err != nil {
		return nil, err
	}
	op := t.op.op
	if t.lhs.mask != nil && f.kind != kUint {
		return nil, typeCannot(f, t.lhs.tok, "&")
	}
	switch f.kind {
	case kProto:
		if op == opContains || op == opMatches {
			return nil, errAt(ClassUnsupported, t.lhs.tok.pos, t.lhs.tok.end, "%q on the bytes of a protocol (%s) is not supported", op, f.name)
		}
		return nil, typeCannot(f, t.lhs.tok, op.String())
	case kUint, kBool, kEther, kTime:
		if op == opContains || op == opMatches {
			return nil, typeCannot(f, t.lhs.tok, op.String())
		}
		return c.numTest(f, l, t)
	case kIPv4, kIPv6, kIP:
		if op == opContains || op == opMatches {
			return nil, typeCannot(f, t.lhs.tok, op.String())
		}
		return c.addrTest(f, l, t)
	case kString:
		return c.strTest(f, l, t)
	}
	panic("displayfilter: unknown kind")
}

func typeCannot[T any](f *field[T], at token, op string) *Error {
	return errAt(ClassType, at.pos, at.end, "%s (type=%s) cannot participate in %q comparison", f.name, kindNames[f.kind], op)
}

// rhsField resolves a right-hand side that names a field of a compatible kind: a field compared
// with a field, as "udp.srcport == udp.dstport".
func (c *compiler[T]) rhsField(f *field[T], o operand) (*field[T], layers, bool, *Error) {
	if o.tok.kind != tWord || c.fields[o.tok.text] == nil {
		return nil, layers{}, false, nil
	}
	g, l, err := c.fieldOf(o, "")
	if err != nil {
		return nil, layers{}, false, err
	}
	ok := g.kind == f.kind || (f.kind == kUint && g.kind == kBool) || (f.kind == kBool && g.kind == kUint)
	if !ok {
		return nil, layers{}, false, errAt(ClassType, o.tok.pos, o.tok.end, "%s and %s are not of compatible types", f.name, g.name)
	}
	if o.mask != nil {
		return nil, layers{}, false, errAt(ClassUnsupported, o.mask.pos, o.mask.end, "\"&\" on the right-hand side is not supported")
	}
	return g, l, true, nil
}

func (c *compiler[T]) numTest(f *field[T], l layers, t testExpr) (matcher[T], *Error) {
	m := &numM[T]{get: f.num, l: l, op: t.op.op, mask: math.MaxUint64, bool: f.kind == kBool, signed: f.kind == kTime}
	if t.lhs.mask != nil {
		mask, err := c.uintLit(f, *t.lhs.mask)
		if err != nil {
			return nil, err
		}
		m.mask = mask
	}
	if m.op == opIn {
		for _, e := range t.set {
			lo, neg, err := c.numLit(f, e.lo)
			if err != nil {
				return nil, err
			}
			hi, hneg := lo, neg
			if e.isRange {
				if hi, hneg, err = c.numLit(f, e.hi); err != nil {
					return nil, err
				}
			}
			if neg || hneg {
				continue // a negative bound on an unsigned field matches nothing, as in tshark
			}
			m.set = append(m.set, [2]uint64{m.norm(lo), m.norm(hi)})
		}
		return m, nil
	}
	g, gl, ok, err := c.rhsField(f, t.rhs)
	if err != nil {
		return nil, err
	}
	if ok {
		m.rhs, m.rl = g.num, gl
		return m, nil
	}
	x, neg, err := c.numLit(f, t.rhs)
	if err != nil {
		return nil, err
	}
	m.x, m.neg = m.norm(x), neg
	return m, nil
}

// notField refuses a field where a value must stand; vs names what the value is compared with.
func (c *compiler[T]) notField(o operand, vs string) *Error {
	t := o.tok
	if o.layer != nil || o.mask != nil {
		return errAt(ClassSyntax, t.pos, t.end, "%s is not a field: it takes no layer or mask", t.text)
	}
	if t.kind == tWord && c.fields[t.text] != nil {
		return errAt(ClassType, t.pos, t.end, "%s and %s are not of compatible types", vs, t.text)
	}
	return nil
}

// numLit converts a value for an integer, boolean, MAC or time field. neg is true for a negative
// integer on an unsigned field: tshark accepts it, and no value equals it or orders with it.
func (c *compiler[T]) numLit(f *field[T], o operand) (uint64, bool, *Error) {
	t := o.tok
	if err := c.notField(o, f.name); err != nil {
		return 0, false, err
	}
	switch t.kind {
	case tChar:
		if f.kind == kUint || f.kind == kBool {
			return uint64(t.val[0]), false, nil
		}
	case tString:
		return 0, false, errAt(ClassValue, t.pos, t.end, "%s cannot be converted from a string (%s)", kindNames[f.kind], t.text)
	}
	switch f.kind {
	case kEther:
		v, err := etherLit(t)
		return v, false, err
	case kTime:
		v, err := timeLit(t, c.floats)
		return v, false, err
	case kBool:
		switch t.text {
		case "True":
			return 1, false, nil
		case "False":
			return 0, false, nil
		}
		if v, neg, err := parseUint(t.text); err == nil {
			return v, neg, nil
		}
		return 0, false, errAt(ClassValue, t.pos, t.end, "%q cannot be found among the possible values for %s", t.text, f.name)
	}
	if strings.HasPrefix(t.text, "-") {
		if _, _, err := parseUint(t.text[1:]); err == nil {
			return 0, true, nil
		}
	}
	v, err := c.uintLit(f, t)
	return v, false, err
}

func (c *compiler[T]) uintLit(f *field[T], t token) (uint64, *Error) {
	v, neg, err := parseUint(t.text)
	if err != nil && c.floats {
		if x, ferr := strconv.ParseFloat(t.text, 64); ferr == nil && x >= 0 && x < 1<<63 && x == math.Trunc(x) {
			v, neg, err = uint64(x), false, nil
		}
	}
	if err == strconv.ErrRange {
		return 0, errAt(ClassValue, t.pos, t.end, "%q causes an integer overflow", t.text)
	}
	if err != nil || neg {
		return 0, errAt(ClassValue, t.pos, t.end, "%q is not a valid number", t.text)
	}
	if f.bits > 0 && f.bits < 64 && v > 1<<f.bits-1 {
		return 0, errAt(ClassValue, t.pos, t.end, "%q too big for this field, maximum %d", t.text, uint64(1)<<f.bits-1)
	}
	return v, nil
}

// parseUint reads an integer as C's strtoull with base 0 does, as tshark: 0x hex, leading-0
// octal, decimal.
func parseUint(s string) (uint64, bool, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" || s[0] == '+' || s[0] == '-' || strings.Contains(s, "_") {
		return 0, neg, strconv.ErrSyntax
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok {
			return 0, neg, ne.Err
		}
		return 0, neg, err
	}
	if len(s) > 1 && (s[1] == 'o' || s[1] == 'O' || s[1] == 'b' || s[1] == 'B') {
		return 0, neg, strconv.ErrSyntax // Go's 0o and 0b prefixes are no C prefixes
	}
	return v, neg, nil
}

// etherLit reads six bytes separated by ':', '-' or '.', or in three dotted groups of four
// hex digits, as tshark accepts them.
func etherLit(t token) (uint64, *Error) {
	s := t.text
	var parts []string
	switch {
	case strings.Count(s, ".") == 2 && len(s) == 14:
		for _, g := range strings.Split(s, ".") {
			if len(g) != 4 {
				return 0, errAt(ClassValue, t.pos, t.end, "%q is not a valid Ethernet address", s)
			}
			parts = append(parts, g[:2], g[2:])
		}
	default:
		parts = strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '-' || r == '.' })
	}
	var v uint64
	for _, p := range parts {
		if len(p) < 1 || len(p) > 2 || !isHex(p[0]) || (len(p) == 2 && !isHex(p[1])) {
			return 0, errAt(ClassValue, t.pos, t.end, "%q is not a valid Ethernet address", s)
		}
		b, _ := strconv.ParseUint(p, 16, 8)
		v = v<<8 | b
	}
	if len(parts) < 6 {
		return 0, errAt(ClassValue, t.pos, t.end, "%q contains too few bytes to be a valid Ethernet address", s)
	}
	if len(parts) > 6 {
		return 0, errAt(ClassValue, t.pos, t.end, "%q contains too many bytes to be a valid Ethernet address", s)
	}
	return v, nil
}

// timeLit reads seconds (since the epoch, or a duration) with up to nine decimals, held as
// nanoseconds; with floats, also in exponent form (1e3).
func timeLit(t token, floats bool) (uint64, *Error) {
	s := t.text
	if floats && strings.ContainsAny(s, "eE") {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.Abs(x) > math.MaxInt64/1e9 {
			return 0, errAt(ClassValue, t.pos, t.end, "%q is not a valid time in seconds", t.text)
		}
		return uint64(int64(math.Round(x * 1e9))), nil
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	bad := errAt(ClassValue, t.pos, t.end, "%q is not a valid time in seconds", t.text)
	if whole == "" || len(frac) > 9 || strings.ContainsAny(whole+frac, "+-_xXoObB") {
		return 0, bad
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec > math.MaxInt64/1_000_000_000-1 {
		return 0, bad
	}
	var ns int64
	if frac != "" {
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, bad
		}
		ns = n
	}
	v := sec*1e9 + ns
	if neg {
		v = -v
	}
	return uint64(v), nil
}

func (c *compiler[T]) addrLit(f *field[T], o operand) (netip.Prefix, *Error) {
	t := o.tok
	if err := c.notField(o, f.name); err != nil {
		return netip.Prefix{}, err
	}
	if t.kind == tString || t.kind == tChar {
		return netip.Prefix{}, errAt(ClassValue, t.pos, t.end, "%s cannot be converted from a string (%s)", kindNames[f.kind], t.text)
	}
	want, width, name := 4, 32, "IPv4"
	switch f.kind {
	case kIPv6:
		want, width, name = 6, 128, "IPv6"
	case kIP:
		want, name = 0, "IP"
	}
	s, bitsText, hasBits := strings.Cut(t.text, "/")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || (want == 4 && !a.Is4()) || (want == 6 && !a.Is6()) {
		return netip.Prefix{}, errAt(ClassValue, t.pos, t.end, "%q is not a valid hostname or %s address", s, name)
	}
	if want == 0 {
		a = a.Unmap()
		width = a.BitLen()
	}
	bits := width
	if hasBits {
		n, err := strconv.Atoi(bitsText)
		if err != nil || n < 0 {
			return netip.Prefix{}, errAt(ClassValue, t.pos, t.end, "%q is not a valid prefix length", bitsText)
		}
		if n > width {
			return netip.Prefix{}, errAt(ClassValue, t.pos, t.end, "netmask bits in a CIDR %s address should be <= %d, not %d", name, width, n)
		}
		bits = n
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

func (c *compiler[T]) addrTest(f *field[T], l layers, t testExpr) (matcher[T], *Error) {
	m := &addrM[T]{get: f.addr, l: l, op: t.op.op}
	if m.op == opIn {
		for _, e := range t.set {
			lo, err := c.addrLit(f, e.lo)
			if err != nil {
				return nil, err
			}
			el := addrElem{p: lo}
			if e.isRange {
				hi, err := c.addrLit(f, e.hi)
				if err != nil {
					return nil, err
				}
				el = addrElem{lo: lo.Addr(), hi: hi.Addr(), isRange: true}
			}
			m.set = append(m.set, el)
		}
		return m, nil
	}
	g, gl, ok, err := c.rhsField(f, t.rhs)
	if err != nil {
		return nil, err
	}
	if ok {
		m.rhs, m.rl = g.addr, gl
		return m, nil
	}
	if m.x, err = c.addrLit(f, t.rhs); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *compiler[T]) strLit(o operand) ([]byte, *Error) {
	t := o.tok
	if err := c.notField(o, "a string"); err != nil {
		return nil, err
	}
	if t.kind == tString || t.kind == tChar {
		return []byte(t.val), nil
	}
	return []byte(t.text), nil
}

func (c *compiler[T]) strTest(f *field[T], l layers, t testExpr) (matcher[T], *Error) {
	m := &strM[T]{get: f.str, l: l, op: t.op.op}
	switch m.op {
	case opIn:
		for _, e := range t.set {
			lo, err := c.strLit(e.lo)
			if err != nil {
				return nil, err
			}
			hi := lo
			if e.isRange {
				if hi, err = c.strLit(e.hi); err != nil {
					return nil, err
				}
			}
			m.set = append(m.set, [2][]byte{lo, hi})
		}
		return m, nil
	case opMatches:
		pat, err := c.strLit(t.rhs)
		if err != nil {
			return nil, err
		}
		re, rerr := compileRegex(string(pat))
		if rerr != nil {
			rerr.Pos, rerr.End = t.rhs.tok.pos, t.rhs.tok.end
			return nil, rerr
		}
		m.re = re
		return m, nil
	}
	g, gl, ok, err := c.rhsField(f, t.rhs)
	if err != nil {
		return nil, err
	}
	if ok {
		m.rhs, m.rl = g.str, gl
		return m, nil
	}
	if m.x, err = c.strLit(t.rhs); err != nil {
		return nil, err
	}
	return m, nil
}

// pcreOnly names constructs of PCRE2 that RE2 (Go's regexp) does not run, for a clear message
// instead of RE2's parse error.
var pcreOnly = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`\(\?<?[=!]`), "lookahead and lookbehind assertions"},
	{regexp.MustCompile(`\\[1-9]|\\g\{?-?[0-9]|\\k[<{']`), "backreferences"},
	{regexp.MustCompile(`\(\?>`), "atomic groups"},
	{regexp.MustCompile(`[*+?}]\+`), "possessive quantifiers"},
	{regexp.MustCompile(`\(\?(R|[0-9]+|&|P>)`), "recursion"},
	{regexp.MustCompile(`\(\?\(`), "conditional groups"},
	{regexp.MustCompile(`\\K`), "\\K (reset match start)"},
}

// compileRegex compiles a pattern as Wireshark's "matches" does: case-insensitive unless the
// pattern turns it off with (?-i).
func compileRegex(pat string) (*regexp.Regexp, *Error) {
	re, err := regexp.Compile("(?i)" + pat)
	if err == nil {
		return re, nil
	}
	for _, p := range pcreOnly {
		if p.re.MatchString(pat) {
			return nil, &Error{Class: ClassUnsupported, Msg: fmt.Sprintf("regular expression %q uses %s, which PCRE2 (Wireshark) runs but Go's RE2 does not", pat, p.what)}
		}
	}
	msg := err.Error()
	if se, ok := err.(*syntax.Error); ok {
		msg = fmt.Sprintf("%s: %q", se.Code, se.Expr)
	}
	return nil, &Error{Class: ClassValue, Msg: "regular expression compilation error: " + msg}
}
