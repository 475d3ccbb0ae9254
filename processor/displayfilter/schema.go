package displayfilter

import (
	"maps"
	"net/netip"
	"slices"
	"time"
	"unsafe"
)

// Schema names the fields of records of type T, so the display-filter language can select
// records other than packets: flows by their Zeek conn.log fields, say. Each getter given for a
// name is one occurrence of the field; "any occurrence" and "all occurrences" read as for packets.
type Schema[T any] struct {
	fields map[string]*field[T]
	// Floats lets integer fields take values such as 1e6 and times take exponents (tshark
	// refuses both; byte counts and durations read better with them).
	Floats bool
}

// NewSchema returns an empty schema.
func NewSchema[T any]() *Schema[T] { return &Schema[T]{fields: map[string]*field[T]{}} }

// Uint adds an unsigned integer field; ok false means the record lacks that occurrence.
func (s *Schema[T]) Uint(name string, get ...func(*T) (v uint64, ok bool)) {
	s.fields[name] = &field[T]{name: name, kind: kUint, bits: 64, num: func(r *T, _ int, l layers) nums {
		var o nums
		for i, g := range get {
			if v, ok := g(r); ok && l.has(i+1) {
				o.add(v)
			}
		}
		return o
	}}
}

// Seconds adds a time field read as seconds (a duration, or a time since the epoch).
func (s *Schema[T]) Seconds(name string, get func(*T) (time.Duration, bool)) {
	s.fields[name] = &field[T]{name: name, kind: kTime, num: func(r *T, _ int, l layers) nums {
		var o nums
		if d, ok := get(r); ok && l.has(1) {
			o.add(uint64(d.Nanoseconds()))
		}
		return o
	}}
}

// Addr adds an IP address field of either family.
func (s *Schema[T]) Addr(name string, get ...func(*T) netip.Addr) {
	s.fields[name] = &field[T]{name: name, kind: kIP, addr: func(r *T, l layers) addrs {
		var o addrs
		for i, g := range get {
			if a := g(r); a.IsValid() && l.has(i+1) {
				o.add(a.Unmap())
			}
		}
		return o
	}}
}

// Text adds a string field; an empty string is an absent field.
func (s *Schema[T]) Text(name string, get func(*T) string) {
	s.fields[name] = &field[T]{name: name, kind: kString, str: func(r *T, l layers) ([]byte, bool) {
		v := get(r)
		if v == "" || !l.has(1) {
			return nil, false
		}
		// The matchers only read the bytes: no copy of the string is made.
		return unsafe.Slice(unsafe.StringData(v), len(v)), true
	}}
}

// Alias makes another name for a field already added.
func (s *Schema[T]) Alias(alias, name string) {
	f := *s.fields[name]
	f.name = alias
	s.fields[alias] = &f
}

// Names lists the schema's fields, sorted.
func (s *Schema[T]) Names() []string { return slices.Sorted(maps.Keys(s.fields)) }

// RecordFilter is a filter compiled against a Schema; immutable, safe to share.
type RecordFilter[T any] struct {
	m    matcher[T]
	text string
}

// Compile parses and type-checks a filter over the schema's fields; the error is an *Error.
func (s *Schema[T]) Compile(text string) (*RecordFilter[T], error) {
	ast, err := parse(text)
	if err == nil {
		c := &compiler[T]{fields: s.fields, floats: s.Floats}
		var m matcher[T]
		if m, err = c.expr(ast); err == nil {
			return &RecordFilter[T]{m: m, text: text}, nil
		}
	}
	err.Filter = text
	return nil, err
}

// Match says whether the record passes; a nil filter passes everything.
func (f *RecordFilter[T]) Match(r *T) bool { return f == nil || f.m.match(r, 0) }

func (f *RecordFilter[T]) String() string {
	if f == nil {
		return ""
	}
	return f.text
}
