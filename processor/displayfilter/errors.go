package displayfilter

import (
	"fmt"
	"strings"
)

// Class groups errors as tshark's messages do, so tests can compare the kind of mistake and its
// place with tshark's without depending on wording.
type Class uint8

const (
	// ClassSyntax: a token where the grammar allows none of its kind, a bad escape, a missing quote.
	ClassSyntax Class = iota + 1
	// ClassEnd: the filter ends where more was needed ("ip.addr ==", "(tcp").
	ClassEnd
	// ClassUnknownField: a name that is no field capfleet decodes, where a field must stand.
	ClassUnknownField
	// ClassValue: a value that does not convert to the field's type (bad number, too big, bad
	// address or prefix length, invalid regular expression).
	ClassValue
	// ClassType: an operator the field's type does not support, or fields of different types.
	ClassType
	// ClassUnsupported: valid for tshark but outside what capfleet evaluates (PCRE2-only regular
	// expressions, slices, functions, arithmetic).
	ClassUnsupported
)

var classNames = [...]string{"", "syntax", "end", "unknown-field", "value", "type", "unsupported"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// Error is a filter that does not compile. Pos and End are byte offsets into the filter (End
// exclusive); both are -1 when the error has no place, as for an unexpected end.
type Error struct {
	Class    Class
	Pos, End int
	Msg      string
	Filter   string
}

// Error gives the message and the 1-based column, on one line, fit for a condition message.
func (e *Error) Error() string {
	if e.Pos < 0 {
		return fmt.Sprintf("display filter: %s", e.Msg)
	}
	return fmt.Sprintf("display filter: column %d: %s", e.Pos+1, e.Msg)
}

// Caret shows the filter with the error's place underlined as tshark does, for terminals.
func (e *Error) Caret() string {
	if e.Pos < 0 {
		return e.Error()
	}
	n := max(e.End-e.Pos, 1)
	return fmt.Sprintf("%s\n    %s\n    %s^%s", e.Error(), e.Filter, strings.Repeat(" ", e.Pos), strings.Repeat("~", n-1))
}

func errAt(c Class, pos, end int, format string, args ...any) *Error {
	return &Error{Class: c, Pos: pos, End: end, Msg: fmt.Sprintf(format, args...)}
}
