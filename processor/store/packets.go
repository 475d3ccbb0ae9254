package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gocql/gocql"
	"github.com/google/gopacket/layers"
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
	LinkType  layers.LinkType
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

const insertPacket = `INSERT INTO packets (sensor, bucket, shard, ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`

// packetShard spreads a sensor's minute over PacketShards partitions by Kafka partition, which keeps the
// packets of one flow (partitioned by flow hash) together.
func packetShard(kafkaPartition int32) int {
	return int(uint32(kafkaPartition) % PacketShards)
}

// WritePackets stores packets with the given time to live (0 keeps them forever) and returns once
// Cassandra acknowledged all of them.
func (w *Writer) WritePackets(ctx context.Context, pkts []Packet, ttl time.Duration) error {
	stmts := make([]statement, 0, len(pkts))
	secs := ttlSeconds(ttl)
	for i := range pkts {
		p := &pkts[i]
		b := bucketOf(p.Timestamp, PacketBucket)
		shard := packetShard(p.Partition)
		stmts = append(stmts, statement{
			partition: fmt.Sprintf("%s\x00%d\x00%d", p.Sensor, b.UnixNano(), shard),
			cql:       insertPacket,
			args: []any{p.Sensor, b, shard, p.Timestamp.UnixNano(), p.Partition, p.Offset, p.Node, p.Interface,
				int(p.LinkType), p.OrigLen, p.Data, secs},
			size: len(p.Data) + len(p.Node) + len(p.Interface) + len(p.Sensor) + 48,
		})
	}
	return w.exec(ctx, stmts)
}

func ttlSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Reader answers questions from the stored packets and flows.
type Reader struct {
	s *gocql.Session
}

// NewReader reads through s, bound to the keyspace (see Connect).
func NewReader(s *gocql.Session) *Reader { return &Reader{s: s} }

// Packets calls fn for every packet of sensor captured in [from, to] (both ends included), in timestamp
// order (ties in Kafka partition and offset order). fn may keep nothing of p.Data past its return.
func (r *Reader) Packets(ctx context.Context, sensor string, from, to time.Time, fn func(p Packet) error) error {
	if to.Before(from) {
		return fmt.Errorf("time range: --to %s is before --from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
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
	c.p.LinkType, c.p.OrigLen = layers.LinkType(lt), origLen
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

// LinkTypes counts the stored packets of sensor in [from, to] by link type, without reading their frames.
func (r *Reader) LinkTypes(ctx context.Context, sensor string, from, to time.Time) (map[layers.LinkType]int, error) {
	out := map[layers.LinkType]int{}
	for _, b := range bucketsBetween(from, to, PacketBucket) {
		for shard := range PacketShards {
			iter := r.s.Query(`SELECT linktype FROM packets WHERE sensor = ? AND bucket = ? AND shard = ? AND ts_ns >= ? AND ts_ns <= ?`,
				sensor, b, shard, from.UnixNano(), to.UnixNano()).WithContext(ctx).PageSize(5000).Iter()
			var lt int
			for iter.Scan(&lt) {
				out[layers.LinkType(lt)]++
			}
			if err := iter.Close(); err != nil {
				return nil, fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
			}
		}
	}
	return out, nil
}
