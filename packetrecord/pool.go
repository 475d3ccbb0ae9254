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
// that order, so slabs come back in turn; so are entries, from chunks of consecutive entries.
//
// A record is touched by three goroutines, on up to three cores: the Writer's, franz-go's that
// encodes its batch, and the promise's. So that a record costs no more cache-line transfers than it
// must, the Writer's bookkeeping and the promise's are kept apart: the Writer takes entries in
// order from a chunk (no shared free list, so no lock), counts what it put in a slab or chunk on
// its own and settles that count once when it lets go of it (see held), and reserves records
// against the bound in blocks (see reserve); the promise only ever decrements and counts returns.
// Consecutive records in consecutive memory also lets the processor prefetch them at each step.
type Pool struct {
	slabBytes  int
	maxSlabs   int32
	maxRecords int64
	maxChunks  int32

	slabsMade atomic.Int32
	freeSlabs chan *slab

	chunksMade atomic.Int32
	freeChunks chan *chunk

	// reserved is how many records the Writers reserved against maxRecords (in blocks; see reserve),
	// records.returned how many came back: reserved - returned is never above maxRecords.
	reserved atomic.Int64

	writersMu sync.Mutex
	writers   []*Writer

	records, slabs, chunks waitable
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

// chunkEntries is how many entries a chunk holds (as many 256-byte entries as fit Go's 32 KiB size
// class with the chunk's count): a chunk held back by one unanswered record holds back this many.
// reserveBlock is how many records a Writer reserves against the bound at once.
const (
	chunkEntries = 127
	reserveBlock = 64
)

// NewPool returns a pool holding at most maxRecords records and about maxBytes of record bytes.
func NewPool(maxBytes, maxRecords int) *Pool {
	slabBytes := min(max(maxBytes/slabsPerPool, minSlabBytes), maxSlabBytes)
	p := &Pool{
		slabBytes:  slabBytes,
		maxSlabs:   int32(max(maxBytes/slabBytes, 2)),
		maxRecords: int64(max(maxRecords, 1)),
	}
	// The chunks the bound fills and a quarter more, so that records answered out of order
	// (partitions answer apart) leave room, and two besides for the Writers' partly used ones.
	full := (p.maxRecords + chunkEntries - 1) / chunkEntries
	p.maxChunks = int32(min(full+(full+3)/4+2, 1<<20))
	p.freeSlabs = make(chan *slab, p.maxSlabs)
	p.freeChunks = make(chan *chunk, p.maxChunks)
	p.records.token = make(chan struct{}, 1)
	p.slabs.token = make(chan struct{}, 1)
	p.chunks.token = make(chan struct{}, 1)
	return p
}

// entry is one pooled record. It is its record's Context, which is how Release finds it without a
// lookup; as a context it is Background, never done, so franz-go's cancellation by record context
// never fires on it.
type entry struct {
	context.Context
	rec   kgo.Record
	hdr   [1]kgo.RecordHeader
	tag   any
	slab  *slab // nil: the bytes are the record's own
	chunk *chunk
	// flowHash is FlowHash of the record's frame, computed while encoding, when the link type is at
	// hand: the partitioner need not parse the metadata header back.
	flowHash uint32
}

// held is the reference count of a slab or a chunk: one for each record the producer holds in it,
// plus holdBias while a Writer still fills it. The Writer does not count its records one by one,
// which would pass the count's cache line between its core and the promise's for every record: it
// starts the count at holdBias, the promise takes one off per record, and the Writer, letting go,
// settles it once by adding the records it put in less holdBias. Whoever brings it to zero hands
// it back to the pool.
type held struct{ refs atomic.Int32 }

const holdBias = 1 << 30

// settle is the Writer letting go after putting n records in; true when it is free.
func (h *held) settle(n int32) bool { return h.refs.Add(n-holdBias) == 0 }

// unref is the producer letting go of one record; true when it is free.
func (h *held) unref() bool { return h.refs.Add(-1) == 0 }

// slab holds the bytes of consecutive records.
type slab struct {
	held
	pool *Pool
	buf  []byte
}

func (s *slab) free() {
	s.buf = s.buf[:0]
	s.pool.freeSlabs <- s // never blocks: at most maxSlabs exist
	s.pool.slabs.back()
}

// chunk holds the entries of consecutive records. The entries come first: a chunk is page-aligned,
// so each 256-byte entry fills four cache lines of its own.
type chunk struct {
	entries [chunkEntries]entry
	held
	pool *Pool
}

func (c *chunk) free() {
	c.pool.freeChunks <- c // never blocks: at most maxChunks exist
	c.pool.chunks.back()
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

// takeChunk returns a free chunk, a new one while fewer than the bound exist, or nil.
func (p *Pool) takeChunk() *chunk {
	select {
	case c := <-p.freeChunks:
		return c
	default:
	}
	for {
		n := p.chunksMade.Load()
		if n >= p.maxChunks {
			return nil
		}
		if p.chunksMade.CompareAndSwap(n, n+1) {
			c := &chunk{pool: p}
			for i := range c.entries {
				c.entries[i].Context, c.entries[i].chunk = context.Background(), c
			}
			return c
		}
	}
}

// InFlight is how many records of the pool are out.
func (p *Pool) InFlight() int64 {
	n := p.reserved.Load() - int64(p.records.returned.Load())
	p.writersMu.Lock()
	for _, w := range p.writers {
		n -= w.quota.Load()
	}
	p.writersMu.Unlock()
	return n
}

// Writer encodes records into the pool. One goroutine uses a Writer; several Writers share a Pool.
type Writer struct {
	pool *Pool
	// The slab and the chunk being filled, and how many records went into each (see held).
	cur    *slab
	curN   int32
	chunk  *chunk
	chunkN int32
	// quota is how many records the Writer reserved and has not used yet. Only the Writer writes it;
	// it is atomic for InFlight.
	quota atomic.Int64
	// What the last failed Encode lacked, and how many of those had come back when it looked.
	short *waitable
	seen  uint64
}

// NewWriter returns a Writer drawing on p.
func (p *Pool) NewWriter() *Writer {
	w := &Writer{pool: p}
	p.writersMu.Lock()
	p.writers = append(p.writers, w)
	p.writersMu.Unlock()
	return w
}

// reserve takes up to reserveBlock records of the bound for w; false when none is left. The
// count of records returned, which the promise writes, is read here once a block, not per record.
func (w *Writer) reserve() bool {
	p := w.pool
	for {
		seen := p.records.returned.Load()
		r := p.reserved.Load()
		room := p.maxRecords - (r - int64(seen))
		if room <= 0 {
			w.short, w.seen = &p.records, seen
			return false
		}
		n := min(room, reserveBlock)
		if p.reserved.CompareAndSwap(r, r+n) {
			w.quota.Store(n)
			return true
		}
	}
}

// Encode is the record of Encode, in the pool's memory, with tag kept for Release to return. It
// returns false, and nothing is kept, while the pool is full. The record must go to the producer,
// whose promise calls Release, or to Release directly.
func (w *Writer) Encode(m Meta, frame []byte, tag any) (*kgo.Record, bool) {
	p := w.pool
	q := w.quota.Load()
	if q == 0 {
		if !w.reserve() {
			return nil, false
		}
		q = w.quota.Load()
	}
	if w.chunk == nil || w.chunkN == chunkEntries {
		seen := p.chunks.returned.Load()
		if !w.nextChunk() {
			w.short, w.seen = &p.chunks, seen
			return nil, false
		}
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
		w.curN++
		buf = s.buf
	} else {
		// Larger than any slab (a jumbo or offloaded frame under a small bound): bytes of its own,
		// still within the record bound.
		s, buf = nil, make([]byte, 0, need)
	}
	w.quota.Store(q - 1)
	e := &w.chunk.entries[w.chunkN]
	w.chunkN++
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
	w.closeSlab()
	s := w.pool.takeSlab()
	if s == nil {
		return nil
	}
	s.refs.Store(holdBias)
	w.cur, w.curN = s, 0
	return s
}

// nextChunk is next for the chunk of entries.
func (w *Writer) nextChunk() bool {
	w.closeChunk()
	c := w.pool.takeChunk()
	if c == nil {
		return false
	}
	c.refs.Store(holdBias)
	w.chunk, w.chunkN = c, 0
	return true
}

func (w *Writer) closeSlab() {
	if w.cur != nil && w.cur.settle(w.curN) {
		w.cur.free()
	}
	w.cur, w.curN = nil, 0
}

func (w *Writer) closeChunk() {
	if w.chunk != nil && w.chunk.settle(w.chunkN) {
		w.chunk.free()
	}
	w.chunk, w.chunkN = nil, 0
}

// Wait blocks, after Encode found the pool full, until what it lacked (a record, a slab or a chunk
// of entries) came back or giveUp fires (nil: never); false means giveUp fired. True is no promise
// that Encode now succeeds (another Writer may be first): the caller tries again.
func (w *Writer) Wait(giveUp <-chan time.Time) bool {
	if w.short == nil {
		return true
	}
	return w.short.wait(w.seen, giveUp)
}

// Close lets go of the slab and the chunk being filled, so they return to the pool once their
// records are answered, and of the records reserved and not used. The Writer may be used again.
func (w *Writer) Close() {
	w.closeSlab()
	w.closeChunk()
	if q := w.quota.Load(); q > 0 {
		w.quota.Store(0)
		w.pool.reserved.Add(-q)
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
	tag, s, c := e.tag, e.slab, e.chunk
	p := c.pool
	if s != nil && s.unref() {
		s.free()
	}
	if c.unref() {
		c.free()
	}
	p.records.back()
	return tag
}
