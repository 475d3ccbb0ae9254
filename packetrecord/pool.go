package packetrecord

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Pool bounds and recycles the memory of records on their way to Kafka, so that producing a packet
// allocates nothing: records, their headers and their bytes live in slabs, a slab goes back to the
// pool once the producer has answered for every record in it (Release, from the produce promise),
// and at most Bytes of record bytes and Records records are out at once. Full, it is the producer's
// buffer bound: the caller waits (Wait) or sheds and counts, before franz-go's own bound is reached.
//
// Records of one slab are encoded one after the other by one Writer and acknowledged in roughly
// that order, so slabs come back in turn; a slab is a few milliseconds of traffic under load.
type Pool struct {
	slabBytes, slabRecords int
	maxSlabs               int32
	maxRecords             int64

	made     atomic.Int32
	free     chan *slab
	inFlight atomic.Int64
	releases atomic.Uint64 // records released so far: a Writer that found the pool full sees whether any came back since
	waiters  atomic.Int32
	released chan struct{} // a token when something came back while someone waited
}

// slabsPerPool splits the byte bound: enough slabs that one not yet acknowledged in full holds back
// little of the bound, few enough that each holds many records.
const slabsPerPool = 64

// Smallest and largest slab: a frame larger than a slab is encoded into memory of its own.
const (
	minSlabBytes = 64 << 10
	maxSlabBytes = 4 << 20
)

// NewPool returns a pool holding at most about maxBytes of record bytes (key, metadata and frame) and
// at most maxRecords records at once.
func NewPool(maxBytes, maxRecords int) *Pool {
	slabBytes := min(max(maxBytes/slabsPerPool, minSlabBytes), maxSlabBytes)
	slabs := max(maxBytes/slabBytes, 2)
	// A record of a small packet takes ~100 bytes; a slab runs out of bytes or records first,
	// whichever the traffic makes it.
	slabRecords := max(slabBytes/96, 1)
	return &Pool{
		slabBytes:   slabBytes,
		slabRecords: slabRecords,
		maxSlabs:    int32(slabs),
		maxRecords:  int64(max(maxRecords, 1)),
		free:        make(chan *slab, slabs),
		released:    make(chan struct{}, 1),
	}
}

// slab is the memory of consecutive records. It is each of its records' Context, which is how
// Release finds it without a lookup; as a context it is Background, never done, so franz-go's
// cancellation by record context never fires on it.
type slab struct {
	context.Context
	pool *Pool
	buf  []byte
	recs []kgo.Record
	hdrs []kgo.RecordHeader
	tags []any
	n    int
	// refs counts the records the producer holds, plus one while a Writer still fills the slab:
	// whoever drops the last reference returns it to the pool, writer or promise.
	refs atomic.Int32
}

func (p *Pool) newSlab() *slab {
	return &slab{
		Context: context.Background(),
		pool:    p,
		buf:     make([]byte, 0, p.slabBytes),
		recs:    make([]kgo.Record, p.slabRecords),
		hdrs:    make([]kgo.RecordHeader, p.slabRecords),
		tags:    make([]any, p.slabRecords),
	}
}

// take returns a free slab, a new one while fewer than the bound exist, or nil.
func (p *Pool) take() *slab {
	select {
	case s := <-p.free:
		return s
	default:
	}
	for {
		n := p.made.Load()
		if n >= p.maxSlabs {
			return nil
		}
		if p.made.CompareAndSwap(n, n+1) {
			return p.newSlab()
		}
	}
}

func (s *slab) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.buf, s.n = s.buf[:0], 0
	s.pool.free <- s // never blocks: at most maxSlabs exist
}

// wake tells a waiting Writer that memory came back.
func (p *Pool) wake() {
	p.releases.Add(1)
	if p.waiters.Load() == 0 {
		return
	}
	select {
	case p.released <- struct{}{}:
	default:
	}
}

// InFlight is how many records of the pool the producer holds.
func (p *Pool) InFlight() int64 { return p.inFlight.Load() }

// Wait blocks, after Encode found the pool full, until a record came back to the pool or giveUp
// fires (nil: never); false means giveUp fired. A true is no promise that Encode now succeeds (another
// Writer may have been first): the caller tries again.
func (w *Writer) Wait(giveUp <-chan time.Time) bool {
	p := w.pool
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	// Registered as a waiter first, then looked: a release either counts before this look or sees
	// the waiter and leaves a token, so none is missed between the failed Encode and here.
	if p.releases.Load() != w.seen {
		return true
	}
	select {
	case <-p.released:
		return true
	case <-giveUp:
		return false
	}
}

// Writer encodes records into the pool's slabs. One goroutine uses a Writer; several Writers share a
// Pool.
type Writer struct {
	pool *Pool
	cur  *slab
	seen uint64 // releases when the last Encode started
}

// NewWriter returns a Writer drawing on p.
func (p *Pool) NewWriter() *Writer { return &Writer{pool: p} }

// Encode is the record of Encode, in the pool's memory, with tag kept for Release to return. It
// returns false, and nothing is kept, while the pool is full. The record must go to the producer
// (whose promise calls Release) or to Release directly.
func (w *Writer) Encode(m Meta, frame []byte, tag any) (*kgo.Record, bool) {
	p := w.pool
	w.seen = p.releases.Load()
	if p.inFlight.Load() >= p.maxRecords {
		return nil, false
	}
	need := encodedLen(m, frame)
	if need > p.slabBytes {
		// Larger than any slab (a jumbo or offloaded frame with a small bound): memory of its own,
		// still counted, so the record bound holds.
		r := Encode(m, frame)
		r.Context = &slab{Context: context.Background(), pool: p, tags: []any{tag}, n: 1}
		r.Context.(*slab).refs.Store(1)
		p.inFlight.Add(1)
		return r, true
	}
	s := w.cur
	if s == nil || s.n == len(s.recs) || cap(s.buf)-len(s.buf) < need {
		if s = w.next(); s == nil {
			return nil, false
		}
	}
	i := s.n
	s.n++
	s.refs.Add(1)
	p.inFlight.Add(1)
	r := &s.recs[i]
	*r = kgo.Record{Context: s, Headers: s.hdrs[i : i+1 : i+1]}
	s.tags[i] = tag
	s.buf = EncodeInto(r, s.buf, m, frame)
	return r, true
}

// next lets go of the current slab and takes another, or nil when none is free. Letting go first
// means a slab whose records were all answered is free again at once, even the only one.
func (w *Writer) next() *slab {
	w.Close()
	s := w.pool.take()
	if s == nil {
		return nil
	}
	s.refs.Store(1)
	w.cur = s
	return s
}

// Close lets go of the slab being filled, so it returns to the pool once its records are answered.
func (w *Writer) Close() {
	if w.cur != nil {
		w.cur.unref()
		w.cur = nil
	}
}

// Release hands a record of a Pool back once the producer is done with it and returns the tag it
// was encoded with; the record and its bytes must not be used after. Records not from a Pool are
// left alone (nil tag).
func Release(r *kgo.Record) any {
	s, ok := r.Context.(*slab)
	if !ok {
		return nil
	}
	p := s.pool
	var tag any
	if s.recs == nil { // a record with memory of its own
		tag = s.tags[0]
	} else {
		i := s.index(r)
		tag, s.tags[i] = s.tags[i], nil
		s.unref()
	}
	p.inFlight.Add(-1)
	p.wake()
	return tag
}

// index is r's position in s.recs, from its address: the promise hands back the pointer Encode gave out.
func (s *slab) index(r *kgo.Record) int {
	return int((uintptr(unsafe.Pointer(r)) - uintptr(unsafe.Pointer(&s.recs[0]))) / unsafe.Sizeof(kgo.Record{}))
}
