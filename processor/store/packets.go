package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

// Packet is one stored frame. Partition and Offset are where it was read from Kafka: with the timestamp
// they are the row key, which makes a repeated write of the same record land on the same row.
type Packet struct {
	Sensor    string
	Timestamp time.Time
	Partition int32
	Offset    int64
	Node      string
	Interface string
	LinkType  uint32 // pcap LINKTYPE_ value
	OrigLen   int
	Data      []byte
}

// bucketOf returns the start of the bucket of width w holding t, on the Unix epoch grid.
func bucketOf(t time.Time, w time.Duration) time.Time {
	ns := t.UnixNano()
	r := ns % int64(w)
	if r < 0 {
		r += int64(w)
	}
	return time.Unix(0, ns-r).UTC()
}

// bucketsBetween lists the buckets of width w that [from, to] touches, oldest first.
func bucketsBetween(from, to time.Time, w time.Duration) []time.Time {
	var out []time.Time
	for b := bucketOf(from, w); !b.After(to); b = b.Add(w) {
		out = append(out, b)
	}
	return out
}

func ttlSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Reader answers questions from the stored packets and flows.
type Reader struct {
	s           *gocql.Session
	legacy      *bool // whether the per-packet table of schema version 1 holds any row; asked once
	legacyFlows *bool // the same for the flow rows of schema versions 1 and 2
	// OnSkip, when set, hears of each flow block that could not be read (its key and why) and the read
	// goes on without it; when nil such a block fails the read.
	OnSkip func(key string, err error)
}

// NewReader reads through s, bound to the keyspace (see Connect).
func NewReader(s *gocql.Session) *Reader { return &Reader{s: s} }

// Packets calls fn for every packet of sensor captured in [from, to] (both ends included): Scan without
// an address.
func (r *Reader) Packets(ctx context.Context, sensor string, from, to time.Time, fn func(p Packet) error) error {
	_, err := r.Scan(ctx, PacketQuery{Sensor: sensor, From: from, To: to}, fn)
	return err
}

// legacyScan reads the one-row-per-packet table of schema version 1, in the same order as Scan.
func (r *Reader) legacyScan(ctx context.Context, sensor string, from, to time.Time, fn func(p Packet) error) error {
	if has, err := r.hasLegacy(ctx); err != nil || !has {
		return err
	}
	for _, b := range bucketsBetween(from, to, PacketBucket) {
		if err := r.packetsInBucket(ctx, sensor, b, from, to, fn); err != nil {
			return err
		}
	}
	return nil
}

// shardCursor is one shard's rows of a bucket, read a page at a time, with its current row.
type shardCursor struct {
	iter *gocql.Iter
	p    Packet
	ts   int64
}

func (c *shardCursor) next() bool {
	var lt, origLen int
	if !c.iter.Scan(&c.ts, &c.p.Partition, &c.p.Offset, &c.p.Node, &c.p.Interface, &lt, &origLen, &c.p.Data) {
		return false
	}
	c.p.Timestamp = time.Unix(0, c.ts).UTC()
	c.p.LinkType, c.p.OrigLen = uint32(lt), origLen
	return true
}

func (c *shardCursor) before(o *shardCursor) bool {
	if c.ts != o.ts {
		return c.ts < o.ts
	}
	if c.p.Partition != o.p.Partition {
		return c.p.Partition < o.p.Partition
	}
	return c.p.Offset < o.p.Offset
}

// packetsInBucket merges the shards of one bucket, each already in key order, into one ordered stream.
func (r *Reader) packetsInBucket(ctx context.Context, sensor string, b, from, to time.Time, fn func(p Packet) error) error {
	var live []*shardCursor
	closeAll := func() error {
		var first error
		for _, c := range live {
			if err := c.iter.Close(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for shard := range PacketShards {
		c := &shardCursor{p: Packet{Sensor: sensor}}
		c.iter = r.s.Query(`SELECT ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame
			FROM packets WHERE sensor = ? AND bucket = ? AND shard = ? AND ts_ns >= ? AND ts_ns <= ?`,
			sensor, b, shard, from.UnixNano(), to.UnixNano()).WithContext(ctx).PageSize(500).Iter()
		if c.next() {
			live = append(live, c)
		} else if err := c.iter.Close(); err != nil {
			closeAll()
			return fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
		}
	}
	// At most PacketShards cursors: a linear scan for the smallest beats a heap.
	for len(live) > 0 {
		min := 0
		for i := 1; i < len(live); i++ {
			if live[i].before(live[min]) {
				min = i
			}
		}
		c := live[min]
		if err := fn(c.p); err != nil {
			closeAll()
			return err
		}
		if !c.next() {
			err := c.iter.Close()
			live = append(live[:min], live[min+1:]...)
			if err != nil {
				closeAll()
				return fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
			}
		}
	}
	return nil
}

// LinkTypes gives the link types of the stored packets of sensor in [from, to], with a packet count each
// (a block of several link types counts all its packets under each), without reading any frame.
func (r *Reader) LinkTypes(ctx context.Context, sensor string, from, to time.Time) (map[uint32]int, error) {
	refs, err := r.BlockRefs(ctx, sensor, from, to)
	if err != nil {
		return nil, err
	}
	out := map[uint32]int{}
	for _, ref := range refs {
		for _, lt := range ref.LinkTypes {
			out[lt] += ref.Packets
		}
	}
	if has, err := r.hasLegacy(ctx); err != nil || !has {
		return out, err
	}
	for _, b := range bucketsBetween(from, to, PacketBucket) {
		for shard := range PacketShards {
			iter := r.s.Query(`SELECT linktype FROM packets WHERE sensor = ? AND bucket = ? AND shard = ? AND ts_ns >= ? AND ts_ns <= ?`,
				sensor, b, shard, from.UnixNano(), to.UnixNano()).WithContext(ctx).PageSize(5000).Iter()
			var lt int
			for iter.Scan(&lt) {
				out[uint32(lt)]++
			}
			if err := iter.Close(); err != nil {
				return nil, fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
			}
		}
	}
	return out, nil
}

// hasLegacy says whether the per-packet table holds any row. Its partitions are one per minute and shard,
// so reading a range means trying each: a keyspace written only with blocks must not pay that (a month is
// 345,600 partitions).
func (r *Reader) hasLegacy(ctx context.Context) (bool, error) {
	if r.legacy == nil {
		var sensor string
		err := r.s.Query(`SELECT sensor FROM packets LIMIT 1`).WithContext(ctx).Scan(&sensor)
		if err != nil && !isNotFound(err) {
			return false, fmt.Errorf("cassandra: look for packets of schema version 1: %w", err)
		}
		has := err == nil
		r.legacy = &has
	}
	return *r.legacy, nil
}
