package displayfilter

import (
	"bytes"
	"net/netip"
	"regexp"
)

// matcher is one compiled node. Every implementation reads the packet and its own fields only,
// so evaluation allocates nothing and terminates in time linear in the filter's size.
type matcher[T any] interface {
	match(p *T, frame int) bool
}

type andM[T any] struct{ a, b matcher[T] }
type orM[T any] struct{ a, b matcher[T] }
type notM[T any] struct{ x matcher[T] }

func (m *andM[T]) match(p *T, n int) bool { return m.a.match(p, n) && m.b.match(p, n) }
func (m *orM[T]) match(p *T, n int) bool  { return m.a.match(p, n) || m.b.match(p, n) }
func (m *notM[T]) match(p *T, n int) bool { return !m.x.match(p, n) }

// presentM tests that a field or protocol occurs.
type presentM[T any] struct {
	f *field[T]
	l layers
}

func (m *presentM[T]) match(p *T, n int) bool {
	switch {
	case m.f.present != nil:
		return m.f.present(p, m.l)
	case m.f.num != nil:
		return m.f.num(p, n, m.l).n > 0
	case m.f.addr != nil:
		return m.f.addr(p, m.l).n > 0
	default:
		_, ok := m.f.str(p, m.l)
		return ok
	}
}

// all says whether a relation needs every occurrence to hold (!= and ===) rather than one.
func all(op relOp) bool { return op == opAllNe || op == opAllEq }

// holds turns a three-way comparison into the relation's answer for one occurrence.
func holds(op relOp, c int) bool {
	switch op {
	case opAnyEq, opAllEq:
		return c == 0
	case opAllNe, opAnyNe:
		return c != 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	}
	return false
}

// quantify folds one answer per occurrence as the relation asks: any, or all of at least one.
func quantify(op relOp, n int, each func(i int) bool) bool {
	if n == 0 {
		return false
	}
	every := all(op)
	for i := 0; i < n; i++ {
		if each(i) != every {
			return !every
		}
	}
	return every
}

type numM[T any] struct {
	get    func(*T, int, layers) nums
	l      layers
	op     relOp
	mask   uint64
	bool   bool // a flag: compare truth values
	signed bool // a time: compare as int64
	x      uint64
	neg    bool // the literal was negative on an unsigned field
	set    [][2]uint64
	rhs    func(*T, int, layers) nums
	rl     layers
}

func (m *numM[T]) norm(v uint64) uint64 {
	if m.bool && v != 0 {
		return 1
	}
	return v
}

func (m *numM[T]) cmp(a, b uint64) int {
	if m.signed {
		switch x, y := int64(a), int64(b); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *numM[T]) match(p *T, n int) bool {
	o := m.get(p, n, m.l)
	if o.n == 0 {
		return false
	}
	for i := 0; i < o.n; i++ {
		o.v[i] = m.norm(o.v[i] & m.mask)
	}
	if m.rhs != nil {
		r := m.rhs(p, n, m.rl)
		for i := 0; i < r.n; i++ {
			r.v[i] = m.norm(r.v[i])
		}
		return quantify(m.op, o.n, func(i int) bool {
			return quantify(m.op, r.n, func(j int) bool { return holds(m.op, m.cmp(o.v[i], r.v[j])) })
		})
	}
	return quantify(m.op, o.n, func(i int) bool { return m.test(o.v[i]) })
}

func (m *numM[T]) test(v uint64) bool {
	if m.op == opIn {
		for _, r := range m.set {
			if m.cmp(v, r[0]) >= 0 && m.cmp(v, r[1]) <= 0 {
				return true
			}
		}
		return false
	}
	if m.neg {
		return m.op == opAllNe || m.op == opAnyNe
	}
	return holds(m.op, m.cmp(v, m.x))
}

type addrElem struct {
	p       netip.Prefix
	lo, hi  netip.Addr
	isRange bool
}

type addrM[T any] struct {
	get func(*T, layers) addrs
	l   layers
	op  relOp
	x   netip.Prefix
	set []addrElem
	rhs func(*T, layers) addrs
	rl  layers
}

func (m *addrM[T]) match(p *T, _ int) bool {
	o := m.get(p, m.l)
	if m.rhs != nil {
		r := m.rhs(p, m.rl)
		return quantify(m.op, o.n, func(i int) bool {
			return quantify(m.op, r.n, func(j int) bool { return holds(m.op, o.v[i].Compare(r.v[j])) })
		})
	}
	return quantify(m.op, o.n, func(i int) bool { return m.test(o.v[i]) })
}

func (m *addrM[T]) test(v netip.Addr) bool {
	if m.op == opIn {
		for _, e := range m.set {
			if e.isRange {
				if v.Compare(e.lo) >= 0 && v.Compare(e.hi) <= 0 {
					return true
				}
			} else if e.p.Contains(v) {
				return true
			}
		}
		return false
	}
	switch m.op {
	case opAnyEq, opAllEq:
		return m.x.Contains(v)
	case opAllNe, opAnyNe:
		return !m.x.Contains(v)
	}
	// An ordering against a network compares with its first address, as against that address.
	return holds(m.op, v.Compare(m.x.Addr()))
}

type strM[T any] struct {
	get func(*T, layers) ([]byte, bool)
	l   layers
	op  relOp
	x   []byte
	re  *regexp.Regexp
	set [][2][]byte
	rhs func(*T, layers) ([]byte, bool)
	rl  layers
}

func (m *strM[T]) match(p *T, _ int) bool {
	v, ok := m.get(p, m.l)
	if !ok {
		return false
	}
	x := m.x
	if m.rhs != nil {
		if x, ok = m.rhs(p, m.rl); !ok {
			return false
		}
	}
	switch m.op {
	case opContains:
		return bytes.Contains(v, x)
	case opMatches:
		return m.re.Match(v)
	case opIn:
		for _, r := range m.set {
			if bytes.Compare(v, r[0]) >= 0 && bytes.Compare(v, r[1]) <= 0 {
				return true
			}
		}
		return false
	}
	return holds(m.op, bytes.Compare(v, x))
}
