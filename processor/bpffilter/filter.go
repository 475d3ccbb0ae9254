// Package bpffilter is capfleet's one compiler of tcpdump filter expressions, and runs them on
// captured frames in user space: libpcap compiles the expression to classic BPF (so the
// semantics are tcpdump's) for the operator's check, the sensor's kernel filter, and the
// processor's and query's filters, which run the program in golang.org/x/net/bpf's virtual
// machine on the raw frame.
package bpffilter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// DefaultSnaplen is the snap length filters are compiled for; it bounds what "ret" accepts,
// not what the program may read.
const DefaultSnaplen = 262144

// Filter is one expression compiled for one link type. Run is safe for concurrent use.
type Filter struct {
	expr     string
	linkType uint32
	vm       *bpf.VM
}

// NewFilter compiles expr for frames of the given LINKTYPE_ value, to run in user space.
func NewFilter(expr string, linkType uint32) (*Filter, error) {
	raw, err := Compile(expr, linkType, DefaultSnaplen)
	if err != nil {
		return nil, err
	}
	insns, allDecoded := bpf.Disassemble(raw)
	if !allDecoded {
		return nil, fmt.Errorf("filter %q: libpcap produced instructions the Go BPF VM cannot run", expr)
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, fmt.Errorf("filter %q for link type %d: %w", expr, linkType, err)
	}
	return &Filter{expr: expr, linkType: linkType, vm: vm}, nil
}

// Match reports whether the frame passes the filter. The program sees the captured bytes only,
// so "len"/"greater"/"less" compare against the captured length, not the wire length as in
// libpcap; the two differ only for frames cut by the snap length.
func (f *Filter) Match(frame []byte) bool {
	n, err := f.vm.Run(frame)
	return err == nil && n > 0
}

// String is the expression.
func (f *Filter) String() string { return f.expr }

// Set applies one expression to frames of any link type, compiling it for each link type on
// first sight, and counts what it rejects. An empty expression matches everything. Not safe for
// concurrent use; give each goroutine its own Set.
type Set struct {
	expr    string
	byLink  map[uint32]*Filter
	badLink map[uint32]error
	// Rejected counts frames the filter dropped, including frames of a link type the expression
	// cannot be compiled for (for example "ether host" on raw IP).
	Rejected uint64
	// Accepted counts frames that passed.
	Accepted uint64
}

// NewSet checks expr by compiling it for Ethernet, so that a syntax error is reported at once.
func NewSet(expr string) (*Set, error) {
	s := &Set{expr: expr, byLink: map[uint32]*Filter{}, badLink: map[uint32]error{}}
	if expr == "" {
		return s, nil
	}
	f, err := NewFilter(expr, 1)
	if err != nil {
		return nil, err
	}
	s.byLink[1] = f
	return s, nil
}

// Active is false for the empty expression.
func (s *Set) Active() bool { return s.expr != "" }

// Match reports whether a frame of the given link type passes, counting the outcome.
func (s *Set) Match(frame []byte, linkType uint32, _ int) bool {
	if s.expr == "" {
		return true
	}
	f, ok := s.byLink[linkType]
	if !ok {
		if _, bad := s.badLink[linkType]; bad {
			s.Rejected++
			return false
		}
		var err error
		f, err = NewFilter(s.expr, linkType)
		if err != nil {
			s.badLink[linkType] = err
			s.Rejected++
			return false
		}
		s.byLink[linkType] = f
	}
	if f.Match(frame) {
		s.Accepted++
		return true
	}
	s.Rejected++
	return false
}

// LinkErrors lists the link types the expression could not be compiled for, with why.
func (s *Set) LinkErrors() map[uint32]error { return s.badLink }
