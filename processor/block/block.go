// Package block packs the packets of one Kafka partition into compressed blocks, the unit in which the
// pipeline stores packets (one Cassandra row per block, see docs/packet-storage.md), and unpacks them.
//
// A block's body, before compression, is
//
//	packets  per packet: uvarint source, zigzag varint time delta (ns), uvarint offset delta,
//	         uvarint original length, uvarint captured length, the frame
//	sources  uvarint count, then per source: uvarint-prefixed node, uvarint-prefixed interface,
//	         uvarint link type
//	footer   uint32 start of sources, uint32 packet count, "CFB1" (little endian)
//
// The sources table sits at the end so that the builder appends frames straight into the body as they
// arrive and writes the (usually one-entry) table once, when the block is sealed.
package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Packet is one frame of a block and where it came from.
type Packet struct {
	Offset    int64 // Kafka offset: with the partition, the packet's identity
	Timestamp int64 // capture time, ns since the epoch
	OrigLen   int
	LinkType  uint32
	Node      string
	Interface string
	Data      []byte // aliases the block's body when read back
}

// Limits bound a block. A block is cut before the packet that would break one, so the cut depends only
// on the packets since the block's first: a consumer that restarts at a block's first offset cuts the
// same blocks again and rewrites the same rows.
type Limits struct {
	MaxBytes   int // body size before compression (default 1 MiB)
	MaxPackets int // default 16384
	// MaxBuckets bounds the distinct Bucket-wide slices of packet time a block's packets fall in
	// (default 32 of 1 hour): a reader finds a block through one index row per slice. Packet time is
	// not monotonic on a topic (sensors' clocks, replays of old captures), so the bound is on the
	// slices met, not on a span.
	MaxBuckets int
	Bucket     time.Duration
	// A block whose packets fall in at most MaxFine slices of FineBucket (default 4 of 1 minute) lists
	// them in Meta.Fine, so that it can be indexed finely: a live sensor's blocks span a second or two,
	// and a finer index keeps each index partition small. A block that spreads wider (a replay of
	// captures from many days) is indexed by Bucket, one row per hour instead of one per minute. This
	// is not a cut rule: it never changes where a block ends.
	MaxFine    int
	FineBucket time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 20
	}
	if l.MaxPackets <= 0 {
		l.MaxPackets = 16384
	}
	if l.MaxBuckets <= 0 {
		l.MaxBuckets = 32
	}
	if l.Bucket <= 0 {
		l.Bucket = time.Hour
	}
	if l.MaxFine <= 0 {
		l.MaxFine = 4
	}
	if l.FineBucket <= 0 {
		l.FineBucket = time.Minute
	}
	return l
}

// Meta describes a sealed block: what a reader needs to decide whether to read it.
type Meta struct {
	FirstOffset, LastOffset int64
	MinTime, MaxTime        int64 // ns since the epoch
	Packets                 int
	RawBytes                int     // body size before compression
	Buckets                 []int64 // start (ns) of each Bucket-wide slice of time the packets fall in
	// Fine holds the start (ns) of each FineBucket-wide slice the packets fall in when there are at
	// most MaxFine of them, and is nil when there are more.
	Fine []int64
}

// Sealed is a finished block: its metadata, its address index and its body (not compressed).
type Sealed struct {
	Meta
	Index Bloom
	Body  []byte
}

type source struct {
	node, iface string
	lt          uint32
}

const (
	magic      = "CFB1"
	footerSize = 12
	// maxHeader bounds one packet's varint header: five varints of at most 10 bytes.
	maxHeader = 50
)

// Builder gathers the packets of one partition into a block. Not safe for concurrent use.
type Builder struct {
	lim     Limits
	body    []byte
	sources []source
	addrs   map[netip.Addr]struct{}
	meta    Meta
	buckets []int64
	fine    []int64 // up to MaxFine+1 entries: one more means "too many"
	prevTS  int64
	recent  [2]netip.Addr // addresses of the previous packet: most packets repeat them
}

// NewBuilder starts an empty block.
func NewBuilder(lim Limits) *Builder {
	lim = lim.withDefaults()
	return &Builder{lim: lim, addrs: map[netip.Addr]struct{}{}}
}

// bodies recycles block bodies: a pipeline seals one every few milliseconds at full speed.
var bodies sync.Pool

// Release hands back the body of a Sealed block once it is compressed (or no longer needed).
func Release(body []byte) {
	if cap(body) > 0 {
		bodies.Put(body[:0])
	}
}

func newBody(lim Limits) []byte {
	if b, ok := bodies.Get().([]byte); ok && cap(b) >= lim.MaxBytes {
		return b
	}
	return make([]byte, 0, lim.MaxBytes+maxHeader+footerSize+256)
}

// Len is the number of packets in the block being built.
func (b *Builder) Len() int { return b.meta.Packets }

// Full says whether p must start a new block: adding it would break a limit. A lone packet larger than
// MaxBytes still makes a block of its own.
func (b *Builder) Full(p *Packet) bool {
	if b.meta.Packets == 0 {
		return false
	}
	return b.meta.Packets >= b.lim.MaxPackets ||
		len(b.body)+maxHeader+len(p.Data) > b.lim.MaxBytes ||
		(len(b.buckets) >= b.lim.MaxBuckets && !slices.Contains(b.buckets, b.bucketOf(p.Timestamp)))
}

func (b *Builder) bucketOf(ts int64) int64 { return sliceOf(ts, b.lim.Bucket) }

// sliceOf is the start of the width-wide slice holding ts, on the epoch grid (also for times before 1970).
func sliceOf(ts int64, width time.Duration) int64 {
	w := int64(width)
	r := ts % w
	if r < 0 {
		r += w
	}
	return ts - r
}

// Add appends p (its frame is copied) and the addresses it carries, for the block's index. Offsets must
// increase within a block.
func (b *Builder) Add(p *Packet, addrs ...netip.Addr) {
	m := &b.meta
	if b.body == nil {
		b.body = newBody(b.lim)
	}
	if m.Packets == 0 {
		m.FirstOffset, m.MinTime, m.MaxTime = p.Offset, p.Timestamp, p.Timestamp
		b.prevTS, m.LastOffset = 0, p.Offset-1
	}
	if bk := b.bucketOf(p.Timestamp); !slices.Contains(b.buckets, bk) {
		b.buckets = append(b.buckets, bk)
	}
	if len(b.fine) <= b.lim.MaxFine {
		if f := sliceOf(p.Timestamp, b.lim.FineBucket); !slices.Contains(b.fine, f) {
			b.fine = append(b.fine, f)
		}
	}
	b.body = binary.AppendUvarint(b.body, uint64(b.sourceOf(p)))
	b.body = binary.AppendVarint(b.body, p.Timestamp-b.prevTS)
	b.body = binary.AppendUvarint(b.body, uint64(p.Offset-m.LastOffset))
	b.body = binary.AppendUvarint(b.body, uint64(p.OrigLen))
	b.body = binary.AppendUvarint(b.body, uint64(len(p.Data)))
	b.body = append(b.body, p.Data...)
	b.prevTS, m.LastOffset = p.Timestamp, p.Offset
	m.MinTime, m.MaxTime = min(m.MinTime, p.Timestamp), max(m.MaxTime, p.Timestamp)
	m.Packets++
	for i, a := range addrs {
		if !a.IsValid() || a == b.recent[0] || a == b.recent[1] {
			continue
		}
		b.addrs[a.Unmap()] = struct{}{}
		if i < len(b.recent) {
			b.recent[i] = a
		}
	}
}

func (b *Builder) sourceOf(p *Packet) int {
	for i, s := range b.sources {
		if s.lt == p.LinkType && s.node == p.Node && s.iface == p.Interface {
			return i
		}
	}
	b.sources = append(b.sources, source{node: p.Node, iface: p.Interface, lt: p.LinkType})
	return len(b.sources) - 1
}

// Seal finishes the block and starts the next one. The body now belongs to the caller, who may hand it
// back with Release once compressed.
func (b *Builder) Seal() Sealed {
	start := len(b.body)
	b.body = binary.AppendUvarint(b.body, uint64(len(b.sources)))
	for _, s := range b.sources {
		b.body = appendString(b.body, s.node)
		b.body = appendString(b.body, s.iface)
		b.body = binary.AppendUvarint(b.body, uint64(s.lt))
	}
	b.body = binary.LittleEndian.AppendUint32(b.body, uint32(start))
	b.body = binary.LittleEndian.AppendUint32(b.body, uint32(b.meta.Packets))
	b.body = append(b.body, magic...)
	b.meta.RawBytes = len(b.body)
	b.meta.Buckets = slices.Clone(b.buckets)
	slices.Sort(b.meta.Buckets)
	if len(b.fine) <= b.lim.MaxFine {
		b.meta.Fine = slices.Clone(b.fine)
		slices.Sort(b.meta.Fine)
	}
	s := Sealed{Meta: b.meta, Index: NewBloom(b.addrs), Body: b.body}
	b.body, b.sources, b.meta, b.buckets, b.fine = nil, b.sources[:0], Meta{}, b.buckets[:0], b.fine[:0]
	clear(b.addrs)
	b.recent = [2]netip.Addr{}
	return s
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ErrCorrupt wraps every reason a body cannot be read.
var ErrCorrupt = errors.New("corrupt packet block")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Each calls fn for every packet of body in the order they were added. p.Data aliases body. A body that
// is cut or inconsistent gives an error wrapping ErrCorrupt, after the packets before the damage.
func Each(body []byte, firstOffset int64, fn func(p *Packet) error) error {
	srcs, count, end, err := footer(body)
	if err != nil {
		return err
	}
	var (
		p   Packet
		off = 0
		ts  int64
	)
	p.Offset = firstOffset - 1
	for i := 0; i < count; i++ {
		var v [5]uint64
		for j := range v {
			var n int
			if j == 1 {
				var d int64
				d, n = binary.Varint(body[off:end])
				v[j] = uint64(d)
			} else {
				v[j], n = binary.Uvarint(body[off:end])
			}
			if n <= 0 {
				return corrupt("packet %d of %d: header cut at byte %d", i+1, count, off)
			}
			off += n
		}
		if v[0] >= uint64(len(srcs)) {
			return corrupt("packet %d: source %d of %d", i+1, v[0], len(srcs))
		}
		if v[4] > uint64(end-off) {
			return corrupt("packet %d: %d bytes of frame, %d left", i+1, v[4], end-off)
		}
		if v[2] == 0 || v[3] > 1<<31 {
			return corrupt("packet %d: offset step %d, original length %d", i+1, v[2], v[3])
		}
		s := srcs[v[0]]
		ts += int64(v[1])
		p.Offset += int64(v[2])
		p.Timestamp, p.OrigLen, p.LinkType, p.Node, p.Interface = ts, int(v[3]), s.lt, s.node, s.iface
		p.Data = body[off : off+int(v[4]) : off+int(v[4])]
		off += int(v[4])
		if err := fn(&p); err != nil {
			return err
		}
	}
	if off != end {
		return corrupt("%d bytes after the last packet", end-off)
	}
	return nil
}

// footer reads the sources table and the packet count; end is where the packets end.
func footer(body []byte) (srcs []source, count, end int, err error) {
	if len(body) < footerSize || string(body[len(body)-4:]) != magic {
		return nil, 0, 0, corrupt("no block footer in %d bytes", len(body))
	}
	f := body[len(body)-footerSize:]
	start, n := binary.LittleEndian.Uint32(f), binary.LittleEndian.Uint32(f[4:])
	tab := body[:len(body)-footerSize]
	if uint64(start) > uint64(len(tab)) {
		return nil, 0, 0, corrupt("sources at %d of %d bytes", start, len(tab))
	}
	// Each packet takes at least 5 header bytes: a count beyond that is a lie, not a reason to allocate.
	if uint64(n)*5 > uint64(start) {
		return nil, 0, 0, corrupt("%d packets in %d bytes", n, start)
	}
	tab = tab[start:]
	ns, k := binary.Uvarint(tab)
	if k <= 0 || ns > uint64(len(tab)) {
		return nil, 0, 0, corrupt("sources table")
	}
	tab = tab[k:]
	srcs = make([]source, 0, ns)
	for range ns {
		var s source
		if s.node, tab, err = readString(tab); err != nil {
			return nil, 0, 0, err
		}
		if s.iface, tab, err = readString(tab); err != nil {
			return nil, 0, 0, err
		}
		lt, k := binary.Uvarint(tab)
		if k <= 0 || lt > 1<<32-1 {
			return nil, 0, 0, corrupt("link type of source %d", len(srcs))
		}
		s.lt, tab = uint32(lt), tab[k:]
		srcs = append(srcs, s)
	}
	if len(tab) != 0 {
		return nil, 0, 0, corrupt("%d bytes after the sources table", len(tab))
	}
	return srcs, int(n), int(start), nil
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, corrupt("string of %d bytes in %d", n, len(b))
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
