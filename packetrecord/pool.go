package packetrecord

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Pool bounds and recycles the memory of records on their way to Kafka, so that producing a packet
// allocates nothing: each record is a pooled entry (the *kgo.Record, its header and a caller's tag)
// whose bytes (key, metadata, frame) live in a shared slab; Release, from the produce promise, hands
// the entry back, and a slab goes back once every record in it was answered. At most maxRecords
// records and about maxBytes of slabs are out at once: full, the pool is the producer's buffer
// bound, where the caller waits (Writer.Wait) or sheds and counts, before franz-go's own bound.
//
// A slab is filled by one Writer with consecutive records, which the producer answers in roughly
// that order, so slabs come back in turn.
type Pool struct {
	slabBytes  int
	maxSlabs   int32
	maxRecords int64

	slabsMade atomic.Int32
	freeSlabs chan *slab
	inFlight  atomic.Int64

	entriesMu sync.Mutex
	entries   []*entry // free ones

	records, slabs waitable
}

// waitable is one kind of memory a Writer may wait for: a counter of returns, and a token for a
// waiter. Checking the counter after registering as a waiter, while a return bumps the counter
// before looking for waiters, means no return goes unnoticed.
type waitable struct {
	returned atomic.Uint64
	waiters  atomic.Int32
	token    chan struct{}
}

func (w *waitable) back() {
	w.returned.Add(1)
	if w.waiters.Load() == 0 {
		return
	}
	select {
	case w.token <- struct{}{}:
	default:
	}
}

func (w *waitable) wait(seen uint64, giveUp <-chan time.Time) bool {
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	if w.returned.Load() != seen {
		return true
	}
	select {
	case <-w.token:
		return true
	case <-giveUp:
		return false
	}
}

// Slab sizes: small enough that a slab held back by one unanswered record is little of the bound,
// large enough to hold thousands of small packets. A frame larger than a slab gets memory of its own.
const (
	slabsPerPool = 256
	minSlabBytes = 64 << 10
	maxSlabBytes = 1 << 20
)

// NewPool returns a pool holding at most maxRecords records and about maxBytes of record bytes.
func NewPool(maxBytes, maxRecords int) *Pool {
	slabBytes := min(max(maxBytes/slabsPerPool, minSlabBytes), maxSlabBytes)
	p := &Pool{
		slabBytes:  slabBytes,
		maxSlabs:   int32(max(maxBytes/slabBytes, 2)),
		maxRecords: int64(max(maxRecords, 1)),
	}
	p.freeSlabs = make(chan *slab, p.maxSlabs)
	p.records.token = make(chan struct{}, 1)
	p.slabs.token = make(chan struct{}, 1)
	return p
}

// entry is one pooled record. It is its record's Context, which is how Release finds it without a
// lookup; as a context it is Background, never done, so franz-go's cancellation by record context
// never fires on it.
type entry struct {
	context.Context
	rec  kgo.Record
	hdr  [1]kgo.RecordHeader
	tag  any
	slab *slab // nil: the bytes are the record's own
	pool *Pool
	// flowHash is FlowHash of the record's frame, computed while encoding, when the link type is at
	// hand: the partitioner need not parse the metadata header back.
	flowHash uint32
}

// slab holds the bytes of consecutive records.
type slab struct {
	pool *Pool
	buf  []byte
	// refs counts the records the producer holds in it, plus one while a Writer still fills it:
	// whoever drops the last reference returns it to the pool, writer or promise.
	refs atomic.Int32
}

func (s *slab) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.buf = s.buf[:0]
	s.pool.freeSlabs <- s // never blocks: at most maxSlabs exist
	s.pool.slabs.back()
}

// takeSlab returns a free slab, a new one while fewer than the bound exist, or nil.
func (p *Pool) takeSlab() *slab {
	select {
	case s := <-p.freeSlabs:
		return s
	default:
	}
	for {
		n := p.slabsMade.Load()
		if n >= p.maxSlabs {
			return nil
		}
		if p.slabsMade.CompareAndSwap(n, n+1) {
			return &slab{pool: p, buf: make([]byte, 0, p.slabBytes)}
		}
	}
}

// takeEntry returns a free entry, making them in chunks (one allocation for many records while the
// pool grows); the record bound is checked by the caller.
func (p *Pool) takeEntry() *entry {
	p.entriesMu.Lock()
	defer p.entriesMu.Unlock()
	if len(p.entries) == 0 {
		chunk := make([]entry, entryChunk)
		for i := range chunk {
			chunk[i].Context, chunk[i].pool = context.Background(), p
			p.entries = append(p.entries, &chunk[i])
		}
	}
	e := p.entries[len(p.entries)-1]
	p.entries = p.entries[:len(p.entries)-1]
	return e
}

const entryChunk = 256

func (p *Pool) putEntry(e *entry) {
	e.tag, e.slab = nil, nil
	p.entriesMu.Lock()
	p.entries = append(p.entries, e)
	p.entriesMu.Unlock()
}

// InFlight is how many records of the pool are out.
func (p *Pool) InFlight() int64 { return p.inFlight.Load() }

// Writer encodes records into the pool. One goroutine uses a Writer; several Writers share a Pool.
type Writer struct {
	pool *Pool
	cur  *slab
	// What the last failed Encode lacked, and how many of those had come back when it looked.
	short *waitable
	seen  uint64
}

// NewWriter returns a Writer drawing on p.
func (p *Pool) NewWriter() *Writer { return &Writer{pool: p} }

// Encode is the record of Encode, in the pool's memory, with tag kept for Release to return. It
// returns false, and nothing is kept, while the pool is full. The record must go to the producer,
// whose promise calls Release, or to Release directly.
func (w *Writer) Encode(m Meta, frame []byte, tag any) (*kgo.Record, bool) {
	p := w.pool
	seen := p.records.returned.Load()
	if p.inFlight.Load() >= p.maxRecords {
		w.short, w.seen = &p.records, seen
		return nil, false
	}
	need := encodedLen(m, frame)
	var buf []byte
	s := w.cur
	if need <= p.slabBytes {
		if s == nil || cap(s.buf)-len(s.buf) < need {
			seen := p.slabs.returned.Load()
			if s = w.next(); s == nil {
				w.short, w.seen = &p.slabs, seen
				return nil, false
			}
		}
		s.refs.Add(1)
		buf = s.buf
	} else {
		// Larger than any slab (a jumbo or offloaded frame under a small bound): bytes of its own,
		// still within the record bound.
		s, buf = nil, make([]byte, 0, need)
	}
	p.inFlight.Add(1)
	e := p.takeEntry()
	e.rec = kgo.Record{Context: e, Headers: e.hdr[:0:1]}
	e.tag, e.slab = tag, s
	buf = EncodeInto(&e.rec, buf, m, frame)
	e.flowHash = FlowHash(e.rec.Value, m.LinkType)
	if s != nil {
		s.buf = buf
	}
	return &e.rec, true
}

// next lets go of the current slab and takes another, or nil when none is free. Letting go first
// means a slab whose records were all answered is free again at once, even the only one.
func (w *Writer) next() *slab {
	w.Close()
	s := w.pool.takeSlab()
	if s == nil {
		return nil
	}
	s.refs.Store(1)
	w.cur = s
	return s
}

// Wait blocks, after Encode found the pool full, until what it lacked (a record or a slab) came back
// or giveUp fires (nil: never); false means giveUp fired. True is no promise that Encode now
// succeeds (another Writer may be first): the caller tries again.
func (w *Writer) Wait(giveUp <-chan time.Time) bool {
	if w.short == nil {
		return true
	}
	return w.short.wait(w.seen, giveUp)
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
	e, ok := r.Context.(*entry)
	if !ok {
		return nil
	}
	p, tag, s := e.pool, e.tag, e.slab
	p.putEntry(e)
	if s != nil {
		s.unref()
	}
	p.inFlight.Add(-1)
	p.records.back()
	return tag
}
