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

const insertPacket = `INSERT INTO packets (sensor, bucket, ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`

// WritePackets stores packets with the given time to live (0 keeps them forever) and returns once
// Cassandra acknowledged all of them.
func (w *Writer) WritePackets(ctx context.Context, pkts []Packet, ttl time.Duration) error {
	stmts := make([]statement, 0, len(pkts))
	secs := ttlSeconds(ttl)
	for i := range pkts {
		p := &pkts[i]
		b := bucketOf(p.Timestamp, PacketBucket)
		stmts = append(stmts, statement{
			partition: p.Sensor + "\x00" + b.String(),
			cql:       insertPacket,
			args: []any{p.Sensor, b, p.Timestamp.UnixNano(), p.Partition, p.Offset, p.Node, p.Interface,
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
		iter := r.s.Query(`SELECT ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame
			FROM packets WHERE sensor = ? AND bucket = ? AND ts_ns >= ? AND ts_ns <= ?`,
			sensor, b, from.UnixNano(), to.UnixNano()).WithContext(ctx).PageSize(1000).Iter()
		var (
			p           = Packet{Sensor: sensor}
			ts          int64
			lt, origLen int
		)
		for iter.Scan(&ts, &p.Partition, &p.Offset, &p.Node, &p.Interface, &lt, &origLen, &p.Data) {
			p.Timestamp = time.Unix(0, ts).UTC()
			p.LinkType = layers.LinkType(lt)
			p.OrigLen = origLen
			if err := fn(p); err != nil {
				iter.Close()
				return err
			}
		}
		if err := iter.Close(); err != nil {
			return fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
		}
	}
	return nil
}

// LinkTypes counts the stored packets of sensor in [from, to] by link type, without reading their frames.
func (r *Reader) LinkTypes(ctx context.Context, sensor string, from, to time.Time) (map[layers.LinkType]int, error) {
	out := map[layers.LinkType]int{}
	for _, b := range bucketsBetween(from, to, PacketBucket) {
		iter := r.s.Query(`SELECT linktype FROM packets WHERE sensor = ? AND bucket = ? AND ts_ns >= ? AND ts_ns <= ?`,
			sensor, b, from.UnixNano(), to.UnixNano()).WithContext(ctx).PageSize(5000).Iter()
		var lt int
		for iter.Scan(&lt) {
			out[layers.LinkType(lt)]++
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("cassandra: read packets of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
		}
	}
	return out, nil
}
