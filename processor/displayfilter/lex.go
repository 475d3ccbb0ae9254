package displayfilter

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString // a quoted string, already unescaped into text
	tChar   // 'c': one byte
	tLParen
	tRParen
	tLBrace
	tRBrace
	tComma
	tDotDot
	tAnd
	tOr
	tNot
	tRel      // a relation: op says which
	tBitAnd   // &
	tLayer    // #N or #[a-b]: lo and hi say which layers
	tLBracket // [ : slices are not supported, but named as such
	tOther    // any other character: always unexpected
)

type token struct {
	kind tokKind
	pos  int // byte offset of the token in the filter
	end  int
	text string // the token as written
	val  string // tString/tChar: the unescaped value
	op   relOp
	raw  bool // r"..."
	lo   int  // tLayer
	hi   int
}

type relOp uint8

const (
	opAnyEq relOp = iota // == eq any_eq
	opAllNe              // != ne all_ne
	opAllEq              // === all_eq
	opAnyNe              // ~= !== any_ne
	opLt
	opLe
	opGt
	opGe
	opContains
	opMatches
	opIn
)

var opNames = [...]string{"==", "!=", "===", "~=", "<", "<=", ">", ">=", "contains", "matches", "in"}

func (o relOp) String() string { return opNames[o] }

// wordOps are the relations and connectives spelt as words; tshark knows them in lower case only.
var wordOps = map[string]token{
	"eq": {kind: tRel, op: opAnyEq}, "any_eq": {kind: tRel, op: opAnyEq},
	"ne": {kind: tRel, op: opAllNe}, "all_ne": {kind: tRel, op: opAllNe},
	"all_eq": {kind: tRel, op: opAllEq}, "any_ne": {kind: tRel, op: opAnyNe},
	"lt": {kind: tRel, op: opLt}, "le": {kind: tRel, op: opLe},
	"gt": {kind: tRel, op: opGt}, "ge": {kind: tRel, op: opGe},
	"contains": {kind: tRel, op: opContains}, "matches": {kind: tRel, op: opMatches},
	"in":  {kind: tRel, op: opIn},
	"and": {kind: tAnd}, "or": {kind: tOr}, "not": {kind: tNot},
}

// isWordByte is what an unquoted field name or value is made of: enough for field names,
// numbers, IPv4/IPv6 addresses with a prefix length, and MAC addresses in their three spellings.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '/' || c == '-' || c == '+' || c >= 0x80
}

// lex splits the whole filter up front; tokens are few and the slice is built once per compile.
func lex(s string) ([]token, *Error) {
	var toks []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
		if i == len(s) {
			toks = append(toks, token{kind: tEOF, pos: i, end: i})
			return toks, nil
		}
		start := i
		c := s[i]
		add := func(t token, n int) {
			t.pos, t.end, t.text = start, start+n, s[start:start+n]
			toks = append(toks, t)
			i = start + n
		}
		if t, n := lexSymbol(s[i:]); n > 0 {
			add(t, n)
			continue
		}
		if lexOwn := ownLexer(s, i); lexOwn != nil {
			t, n, err := lexOwn(s, i)
			if err != nil {
				return nil, err
			}
			add(t, n)
			continue
		}
		switch {
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) && !strings.HasPrefix(s[j:], "..") {
				j++
			}
			if t, ok := wordOps[s[i:j]]; ok {
				add(t, j-i)
			} else {
				add(token{kind: tWord}, j-i)
			}
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			add(token{kind: tOther}, n)
		}
	}
}

// symbols are the operators and punctuation, longer spellings before their prefixes ("===" before
// "==", "!=" before "!").
var symbols = []struct {
	text string
	tok  token
}{
	{"===", token{kind: tRel, op: opAllEq}}, {"!==", token{kind: tRel, op: opAnyNe}},
	{"==", token{kind: tRel, op: opAnyEq}}, {"!=", token{kind: tRel, op: opAllNe}},
	{"~=", token{kind: tRel, op: opAnyNe}}, {"<=", token{kind: tRel, op: opLe}},
	{">=", token{kind: tRel, op: opGe}}, {"&&", token{kind: tAnd}}, {"||", token{kind: tOr}},
	{"..", token{kind: tDotDot}},
	{"<", token{kind: tRel, op: opLt}}, {">", token{kind: tRel, op: opGt}},
	{"~", token{kind: tRel, op: opMatches}}, {"!", token{kind: tNot}}, {"&", token{kind: tBitAnd}},
	{"(", token{kind: tLParen}}, {")", token{kind: tRParen}}, {"{", token{kind: tLBrace}},
	{"}", token{kind: tRBrace}}, {",", token{kind: tComma}}, {"[", token{kind: tLBracket}},
}

// lexSymbol reads the operator or punctuation s starts with; n is 0 when it starts with none.
func lexSymbol(s string) (token, int) {
	for _, sym := range symbols {
		if strings.HasPrefix(s, sym.text) {
			return sym.tok, len(sym.text)
		}
	}
	return token{}, 0
}

// ownLexer is the lexer of a token with rules of its own (a layer, a string, a character) that
// starts at s[i], or nil.
func ownLexer(s string, i int) func(s string, i int) (token, int, *Error) {
	switch c := s[i]; {
	case c == '#':
		return lexLayer
	case c == '"' || (c == 'r' && strings.HasPrefix(s[i+1:], `"`)):
		return lexString
	case c == '\'':
		return lexChar
	}
	return nil
}

// lexLayer reads tshark 4's layer operator: #N, #[N] or #[A-B], layers counted from 1.
func lexLayer(s string, i int) (token, int, *Error) {
	j := i + 1
	num := func() (int, bool) {
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if k == j || j-k > 6 {
			return 0, false
		}
		n, _ := strconv.Atoi(s[k:j])
		return n, true
	}
	bad := func() (token, int, *Error) {
		n := 1
		if j < len(s) {
			_, n = utf8.DecodeRuneInString(s[j:])
		}
		return token{}, 0, errAt(ClassSyntax, j, j+n, "expected a layer number or \"[\" after \"#\"")
	}
	if j < len(s) && s[j] == '[' {
		j++
		k := strings.IndexByte(s[j:], ']')
		if k < 0 {
			return token{}, 0, errAt(ClassSyntax, j, len(s), "the layer range after \"#[\" has no \"]\"")
		}
		inner := s[j : j+k]
		bad := errAt(ClassValue, j, j+k, "%q is not a valid range", inner)
		a, b, isRange := strings.Cut(inner, "-")
		colon := false
		if !isRange {
			a, b, colon = strings.Cut(inner, ":")
		}
		lo, err := strconv.Atoi(a)
		if err != nil || lo < 0 || lo > 1e6 || strings.ContainsAny(a, "+-") {
			return token{}, 0, bad
		}
		hi := lo
		if isRange || colon {
			if hi, err = strconv.Atoi(b); err != nil || hi < 0 || hi > 1e6 || strings.ContainsAny(b, "+-") {
				return token{}, 0, bad
			}
			if colon { // #[start:count]
				hi = lo + hi - 1
			}
		}
		return token{kind: tLayer, lo: lo, hi: hi}, j + k + 1 - i, nil
	}
	n, ok := num()
	if !ok {
		return bad()
	}
	return token{kind: tLayer, lo: n, hi: n}, j - i, nil
}

// lexString reads "..." with tshark's escapes (\\ \" \a \b \f \n \r \t \v, \xHH, \OOO) or a raw
// r"..." in which a backslash is kept and only escapes the quote.
func lexString(s string, i int) (token, int, *Error) {
	raw := s[i] == 'r'
	j := i + 1
	if raw {
		j++
	}
	var b strings.Builder
	for {
		if j >= len(s) {
			return token{}, 0, errAt(ClassSyntax, len(s), len(s)+1, "the final quote is missing from a quoted string")
		}
		c := s[j]
		if c == '"' {
			j++
			return token{kind: tString, val: b.String(), raw: raw}, j - i, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(s) {
			return token{}, 0, errAt(ClassSyntax, len(s), len(s)+1, "the final quote is missing from a quoted string")
		}
		if raw {
			b.WriteByte('\\')
			b.WriteByte(s[j+1])
			j += 2
			continue
		}
		v, n, ok := unescape(s[j:])
		if !ok {
			return token{}, 0, errAt(ClassSyntax, j, j+n, "%s is not a valid escape sequence", s[j:j+n])
		}
		b.WriteByte(v)
		j += n
	}
}

// unescape decodes one backslash escape at the start of s, returning its byte and length.
func unescape(s string) (byte, int, bool) {
	c := s[1]
	// The escapes of one letter, then the bytes they stand for.
	if k := strings.IndexByte(`\"'abfnrtv`, c); k >= 0 {
		return "\\\"'\a\b\f\n\r\t\v"[k], 2, true
	}
	switch {
	case c == 'x':
		v, n := escapeDigits(s, 2, 16)
		return byte(v), n, n > 2
	case c >= '0' && c <= '7':
		v, n := escapeDigits(s, 1, 8)
		return byte(v), n, v <= 255
	}
	_, size := utf8.DecodeRuneInString(s[1:])
	return 0, 1 + size, false
}

// escapeDigits reads the number of an escape from s[from:], in base 16 or 8, up to s[3]: \xHH
// or \OOO. n is where it ends.
func escapeDigits(s string, from, base int) (v, n int) {
	for n = from; n < 4 && n < len(s) && digit(s[n]) < base; n++ {
		v = v*base + digit(s[n])
	}
	return v, n
}

func lexChar(s string, i int) (token, int, *Error) {
	j := i + 1
	if j >= len(s) {
		return token{}, 0, errAt(ClassSyntax, i, len(s), "the final quote is missing from a character constant")
	}
	var v byte
	if s[j] == '\\' && j+1 < len(s) {
		b, n, ok := unescape(s[j:])
		if !ok {
			return token{}, 0, errAt(ClassSyntax, j, j+n, "%s is not a valid escape sequence", s[j:j+n])
		}
		v, j = b, j+n
	} else {
		v, j = s[j], j+1
	}
	if j >= len(s) || s[j] != '\'' {
		return token{}, 0, errAt(ClassSyntax, i, min(j+1, len(s)), "a character constant holds one character")
	}
	return token{kind: tChar, val: string([]byte{v})}, j + 1 - i, nil
}

func isHex(c byte) bool { return digit(c) < 16 }

// digit is c's value as a hex digit, 16 when it is none.
func digit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return 16
}
