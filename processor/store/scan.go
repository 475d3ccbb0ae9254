package store

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"sort"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/processor/block"
)

// PacketQuery selects stored packets of one sensor.
type PacketQuery struct {
	Sensor   string
	From, To time.Time // both included
	// Hosts, when set, skips every block whose address index rules out one of them: a block is read only
	// when it may hold packets of all of them (a flow's two ends, or one address).
	Hosts []netip.Addr
	// OnSkip hears of each block that could not be read (its key and why); the scan goes on without it.
	OnSkip func(key string, err error)
}

// ScanStats says what a scan read, for the analyst and for benchmarks.
type ScanStats struct {
	BlocksIndexed int // blocks active in the time range
	BlocksRead    int // fetched and decompressed
	BlocksCorrupt int // fetched but unreadable, skipped
	BlocksMissing int // indexed but their row is gone (expired, or written by a consumer that died)
	BytesRead     int // compressed bytes fetched
	LegacyRows    int // packets read from the one-row-per-packet table of schema version 1
	Duplicates    int // the same Kafka record in two blocks (a consumer restarted after a failed commit), emitted once
}

// Scan calls fn for every stored packet that q selects, in timestamp order (ties in Kafka partition and
// offset order), each Kafka record once. It reads the blocks of schema version 2 and the packet rows of
// version 1 alike, so a keyspace written before blocks keeps answering. fn may keep nothing of p.Data
// past its return.
func (r *Reader) Scan(ctx context.Context, q PacketQuery, fn func(p Packet) error) (ScanStats, error) {
	var st ScanStats
	if q.To.Before(q.From) {
		return st, fmt.Errorf("time range: --to %s is before --from %s", q.To.Format(time.RFC3339Nano), q.From.Format(time.RFC3339Nano))
	}
	refs, err := r.BlockRefs(ctx, q.Sensor, q.From, q.To)
	if err != nil {
		return st, err
	}
	st.BlocksIndexed = len(refs)
	refs = selectRefs(refs, q.Hosts)

	var legacyErr error
	next, stop := iter.Pull(r.legacyPackets(ctx, q.Sensor, q.From, q.To, &legacyErr))
	defer stop()
	h := &cursorHeap{}
	if lc := (&legacyCursor{next: next}); lc.advance() {
		heap.Push(h, cursor(lc))
	}
	var (
		last    Packet
		emitted bool
		i       int
	)
	for {
		// A block joins the merge before any packet later than its first one leaves it.
		for i < len(refs) && (h.Len() == 0 || refs[i].MinTime <= (*h)[0].head().Timestamp.UnixNano()) {
			if c := r.openBlock(ctx, q, refs[i], &st); c != nil {
				heap.Push(h, cursor(c))
			}
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			i++
		}
		if h.Len() == 0 {
			break
		}
		c := (*h)[0]
		p := c.head()
		if emitted && p.Partition == last.Partition && p.Offset == last.Offset && p.Timestamp.Equal(last.Timestamp) && !c.legacy() {
			st.Duplicates++
		} else {
			if c.legacy() {
				st.LegacyRows++
			}
			if err := fn(*p); err != nil {
				return st, err
			}
			last, emitted = *p, true
		}
		if c.advance() {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return st, legacyErr
}

// selectRefs drops the blocks whose index rules out one of hosts.
func selectRefs(refs []BlockRef, hosts []netip.Addr) []BlockRef {
	if len(hosts) == 0 {
		return refs
	}
	out := refs[:0]
	for _, ref := range refs {
		keep := true
		for _, a := range hosts {
			keep = keep && ref.Index.MayContain(a)
		}
		if keep {
			out = append(out, ref)
		}
	}
	return out
}

// openBlock fetches and unpacks one block into a cursor over its packets in the time range, or reports
// why it cannot and returns nil.
func (r *Reader) openBlock(ctx context.Context, q PacketQuery, ref BlockRef, st *ScanStats) *blockCursor {
	b, found, err := r.ReadBlock(ctx, q.Sensor, ref.Partition, ref.FirstOffset)
	skip := func(err error) *blockCursor {
		if q.OnSkip != nil {
			q.OnSkip(b.Key(), err)
		}
		return nil
	}
	switch {
	case err != nil:
		st.BlocksCorrupt++ // unreadable now; the query goes on with the rest and says so
		return skip(err)
	case !found:
		st.BlocksMissing++
		return skip(errors.New("indexed but not stored (expired, or its writer died before storing it)"))
	}
	st.BlocksRead++
	st.BytesRead += len(b.Data)
	body, err := block.Decompress(nil, b.Data, b.Codec)
	if err == nil && len(body) != b.RawBytes {
		err = fmt.Errorf("%w: %d bytes decompressed, the row says %d", block.ErrCorrupt, len(body), b.RawBytes)
	}
	c := &blockCursor{}
	if err == nil {
		from, to := q.From.UnixNano(), q.To.UnixNano()
		err = block.Each(body, b.FirstOffset, func(bp *block.Packet) error {
			if bp.Timestamp >= from && bp.Timestamp <= to {
				c.pkts = append(c.pkts, Packet{Sensor: q.Sensor, Timestamp: time.Unix(0, bp.Timestamp).UTC(), Partition: b.Partition,
					Offset: bp.Offset, Node: bp.Node, Interface: bp.Interface, LinkType: bp.LinkType, OrigLen: bp.OrigLen, Data: bp.Data})
			}
			return nil
		})
	}
	if err != nil {
		st.BlocksCorrupt++
		return skip(err)
	}
	if len(c.pkts) == 0 {
		return nil
	}
	sort.SliceStable(c.pkts, func(i, j int) bool { return c.pkts[i].Timestamp.Before(c.pkts[j].Timestamp) })
	return c
}

// cursor is one ordered source of packets in the merge: a block, or the legacy rows.
type cursor interface {
	head() *Packet
	advance() bool
	legacy() bool
}

type blockCursor struct {
	pkts []Packet
	i    int
}

func (c *blockCursor) head() *Packet { return &c.pkts[c.i] }
func (c *blockCursor) advance() bool { c.i++; return c.i < len(c.pkts) }
func (c *blockCursor) legacy() bool  { return false }

type legacyCursor struct {
	next func() (Packet, bool)
	p    Packet
}

func (c *legacyCursor) head() *Packet { return &c.p }
func (c *legacyCursor) advance() bool {
	var ok bool
	c.p, ok = c.next()
	return ok
}
func (c *legacyCursor) legacy() bool { return true }

type cursorHeap []cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].head(), h[j].head()
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// legacyPackets yields the packet rows of schema version 1 in [from, to]; a read error ends the sequence
// and lands in *errp.
func (r *Reader) legacyPackets(ctx context.Context, sensor string, from, to time.Time, errp *error) iter.Seq[Packet] {
	return func(yield func(Packet) bool) {
		stopped := errors.New("stopped")
		err := r.legacyScan(ctx, sensor, from, to, func(p Packet) error {
			if !yield(p) {
				return stopped
			}
			return nil
		})
		if err != nil && err != stopped {
			*errp = err
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, gocql.ErrNotFound) }
