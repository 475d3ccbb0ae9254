package replay

import (
	"context"
	"encoding/binary"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/packetrecord"
)

// recordRing is the memory of the records a Topic hands to the producer: a fixed ring of record
// slots, and their bytes in chunks, both reused in the order the records were produced. One
// goroutine (Send's) fills it; the produce promise only marks its record's slot released, and the
// filling side reclaims slots and chunks in order as it needs them.
//
// Why not packetrecord.Pool, which the sensor uses: the pool serves several writers, so every
// record passes through state both sides write (the in-flight and returned counters, a slab's
// reference count, the free list and its lock), and the cache lines holding them travel between
// the producing core and the promise's core on every record; its free list also hands back the
// entry the promise released last, still in the other core's cache. With one writer, the only
// memory the two sides share per record is the record itself, which the producer reads anyway,
// and slots come back long after they were released. In the benchmark's replay into Kafka (make
// bench), replay's CPU fell from about 1,900 to 1,350 ns a packet when it left the pool for the
// ring, side by side on a loaded two-core machine: most of what it paid beyond the bare producer.
// The pool has since lost its per-record lock and counters (entries handed out in order from
// chunks, counts settled per chunk); the two have not been measured against each other since.
type recordRing struct {
	slots []ringSlot
	head  uint64 // sequence number of the next record (slot head % len(slots))
	// done: every record before it was released, its slot and bytes free again. Only the writer
	// reads or moves it.
	done uint64

	chunkBytes int
	maxChunks  int
	made       int
	inUse      []*ringChunk // oldest first; the last is the one being filled
	spare      []*ringChunk

	// awaited is 1 + the sequence number the writer sleeps until released (0: it does not
	// sleep); the promise that releases it sends on wake.
	awaited atomic.Uint64
	wake    chan struct{}
	waits   uint64 // times the writer slept
}

// ringSlot is one record on its way. It is its record's Context, which is how the promise finds
// it; as a context it is Background, never done.
type ringSlot struct {
	context.Context
	rec      kgo.Record
	hdr      [1]kgo.RecordHeader
	tag      func(int, error)
	seq      uint64
	flowHash uint32
	// back is 1 + the sequence number of the last record of this slot the producer is done with:
	// a slot taken again needs no reset, its new record's number being another.
	back atomic.Uint64
}

// ringChunk holds the bytes of consecutive records.
type ringChunk struct {
	buf  []byte
	last uint64 // sequence number of the last record written into it
}

// ringWake is how many records the writer lets come back, once it had to wait, before it goes on:
// waking on each single record would cost a sleep and a wake-up per record while the broker is
// the bottleneck.
const ringWake = 1024

// newRecordRing holds at most records records and about maxBytes of their bytes.
func newRecordRing(records, maxBytes int) *recordRing {
	chunk := min(max(maxBytes/256, 64<<10), 1<<20)
	return &recordRing{
		slots:      make([]ringSlot, max(records, 1)),
		chunkBytes: chunk,
		maxChunks:  max(maxBytes/chunk, 2),
		wake:       make(chan struct{}, 1),
	}
}

// encode builds the record of m and frame in the ring, with tag for release to return; it waits
// while the ring is full.
func (q *recordRing) encode(m packetrecord.Meta, frame []byte, tag func(int, error)) *kgo.Record {
	// packetrecord's bound on what EncodeInto appends
	need := packetrecord.KeyLen + len(frame) + len(m.Node) + len(m.Interface) + 1 + 5*binary.MaxVarintLen64
	s := q.slot()
	s.rec = kgo.Record{Context: s, Headers: s.hdr[:0:1]}
	s.tag = tag
	if need <= q.chunkBytes {
		c := q.chunk(need)
		c.buf = packetrecord.EncodeInto(&s.rec, c.buf, m, frame)
		c.last = s.seq
	} else {
		// Larger than a chunk (only with a small byte bound): bytes of its own.
		packetrecord.EncodeInto(&s.rec, make([]byte, 0, need), m, frame)
	}
	s.flowHash = packetrecord.FlowHash(s.rec.Value, m.LinkType)
	q.head++
	return &s.rec
}

// slot returns the slot of the next record (sequence number head), waiting for the record it held
// before to come back.
func (q *recordRing) slot() *ringSlot {
	n := uint64(len(q.slots))
	seq := q.head
	if seq >= n && seq-n >= q.done {
		q.reclaim(seq - n + 1)
	}
	s := &q.slots[seq%n]
	if seq < n {
		s.Context = context.Background()
	}
	s.seq = seq
	return s
}

// chunk returns a chunk with need bytes to spare, the current one or the next; it waits for
// records to come back while all chunks are out.
func (q *recordRing) chunk(need int) *ringChunk {
	if k := len(q.inUse); k > 0 {
		if c := q.inUse[k-1]; cap(c.buf)-len(c.buf) >= need {
			return c
		}
	}
	for {
		// The oldest chunks whose records all came back are free.
		q.advance()
		freed := 0
		for freed < len(q.inUse)-1 && q.inUse[freed].last < q.done {
			freed++
		}
		for _, c := range q.inUse[:freed] {
			c.buf = c.buf[:0]
			q.spare = append(q.spare, c)
		}
		q.inUse = append(q.inUse[:0], q.inUse[freed:]...)
		var c *ringChunk
		switch {
		case len(q.spare) > 0:
			c = q.spare[len(q.spare)-1]
			q.spare = q.spare[:len(q.spare)-1]
		case q.made < q.maxChunks:
			q.made++
			c = &ringChunk{buf: make([]byte, 0, q.chunkBytes)}
		default:
			// Every chunk is out: wait for the oldest one's records.
			q.reclaim(q.inUse[0].last + 1)
			continue
		}
		q.inUse = append(q.inUse, c)
		return c
	}
}

// advance moves done past the records released since, in order.
func (q *recordRing) advance() {
	for q.done < q.head && q.isBack(q.done) {
		q.done++
	}
}

// isBack tells whether record seq came back.
func (q *recordRing) isBack(seq uint64) bool {
	return q.slots[seq%uint64(len(q.slots))].back.Load() == seq+1
}

// reclaim returns once every record before upTo (at most head) came back, sleeping while the
// broker has them.
func (q *recordRing) reclaim(upTo uint64) {
	for {
		q.advance()
		if q.done >= upTo {
			return
		}
		// Sleep until a record some way on is released, so that a wake-up is worth many records
		// rather than one; if that one is back already (records of another partition may come
		// back first), until the first one missing.
		target := max(min(q.done+ringWake, q.head-1), upTo-1)
		if q.isBack(target) {
			target = q.done
		}
		q.awaited.Store(target + 1)
		if !q.isBack(target) {
			q.waits++
			<-q.wake
		}
		q.awaited.Store(0)
		select { // a token sent after the check above found the record released
		case <-q.wake:
		default:
		}
	}
}

// release hands a record of the ring back once the producer is done with it, returning its size
// and tag; the record must not be used after.
func (q *recordRing) release(r *kgo.Record) (int, func(int, error)) {
	s := r.Context.(*ringSlot)
	size, tag, seq := len(r.Value), s.tag, s.seq
	s.back.Store(seq + 1)
	if q.awaited.Load() == seq+1 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return size, tag
}

// partition is packetrecord.Partition for records of the ring, whose flow hash was computed while
// encoding, when the link type was at hand.
func partition(r *kgo.Record, n int) int {
	if s, ok := r.Context.(*ringSlot); ok && n > 0 {
		return int(s.flowHash % uint32(n))
	}
	return packetrecord.Partition(r, n)
}
