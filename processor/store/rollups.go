package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
)

// RollupBucket is the partition width of the traffic and edge_rollups tables, RollupShards the number of
// shards of an hour of edge_rollups. Changing either is a schema change: readers compute partitions
// from them.
const (
	RollupBucket = time.Hour
	RollupShards = 8
)

// NonIP is the protocol key under which packets without an IP header are counted.
const NonIP = -1

// PB is a count of packets and their bytes.
type PB struct{ Packets, Bytes uint64 }

// Add counts one packet of n bytes.
func (c *PB) Add(n uint64) { c.Packets++; c.Bytes += n }

// TrafficCounts are the packets of one window, as one counter saw them. Bytes are frame lengths on the
// wire (the original length), as tshark's io,stat counts them. Proto splits the packets that were
// decoded (not those the BPF filter dropped before decoding) by the IP protocol of their outer IP header
// (NonIP for none); In, Out and Internal split the IP packets by whether their source and destination
// are local (private, loopback or link-local) addresses: Out leaves a local host for a remote one, In
// the reverse, Internal stays local, and traffic between two remote hosts is in none of them.
type TrafficCounts struct {
	PB
	Proto                  map[int]PB
	In, Out, Internal      PB
	Filtered, DecodeErrors uint64
}

// Merge adds o to c.
func (c *TrafficCounts) Merge(o *TrafficCounts) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	for k, v := range o.Proto {
		if c.Proto == nil {
			c.Proto = map[int]PB{}
		}
		s := c.Proto[k]
		s.Packets += v.Packets
		s.Bytes += v.Bytes
		c.Proto[k] = s
	}
	for _, p := range [][2]*PB{{&c.In, &o.In}, {&c.Out, &o.Out}, {&c.Internal, &o.Internal}} {
		p[0].Packets += p[1].Packets
		p[0].Bytes += p[1].Bytes
	}
	c.Filtered += o.Filtered
	c.DecodeErrors += o.DecodeErrors
}

// TrafficRow is one row of the traffic table: a window [Start, Start+Step) of a sensor as counted on one
// Kafka partition from the record at FirstOffset on.
type TrafficRow struct {
	Sensor      string
	Start       time.Time
	Step        time.Duration
	Partition   int32
	FirstOffset int64
	TrafficCounts
}

// EdgeRow is one row of edge_rollups: the packets, IP bytes (the inner IP header's total length, as
// flows count them) and flows started between A and B (A the smaller address) in [Start, Start+Width).
type EdgeRow struct {
	Sensor         string
	Start          time.Time
	Width          time.Duration
	A, B           netip.Addr
	Partition      int32
	FirstOffset    int64
	Packets, Bytes uint64
	Flows          uint64
}

const (
	insertTraffic = `INSERT INTO traffic (sensor, bucket, start, step_ms, kafka_partition, first_offset, packets, bytes,
	proto_packets, proto_bytes, in_packets, in_bytes, out_packets, out_bytes, internal_packets, internal_bytes,
	filtered, decode_errors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
	insertEdge = `INSERT INTO edge_rollups (bucket, shard, start, width_ms, sensor, a, b, kafka_partition, first_offset,
	packets, ip_bytes, flows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
)

// WriteRollups upserts traffic and edge rows, batched by partition. Rows have deterministic keys, so a
// repeated write replaces what it wrote before.
func (w *Writer) WriteRollups(ctx context.Context, traffic []TrafficRow, edges []EdgeRow, ttl time.Duration) error {
	secs := ttlSeconds(ttl)
	stmts := make([]statement, 0, len(traffic)+len(edges))
	for i := range traffic {
		r := &traffic[i]
		pp, pb := map[int]int64{}, map[int]int64{}
		for k, v := range r.Proto {
			pp[k], pb[k] = int64(v.Packets), int64(v.Bytes)
		}
		bucket := r.Start.Truncate(RollupBucket)
		stmts = append(stmts, statement{
			partition: fmt.Sprintf("t%s\x00%d", r.Sensor, bucket.Unix()),
			cql:       insertTraffic,
			args: []any{r.Sensor, bucket, r.Start, int(r.Step / time.Millisecond), r.Partition, r.FirstOffset,
				int64(r.Packets), int64(r.Bytes), pp, pb, int64(r.In.Packets), int64(r.In.Bytes), int64(r.Out.Packets), int64(r.Out.Bytes),
				int64(r.Internal.Packets), int64(r.Internal.Bytes), int64(r.Filtered), int64(r.DecodeErrors), secs},
			size: 200 + 24*len(pp),
		})
	}
	for i := range edges {
		e := &edges[i]
		bucket, shard := e.Start.Truncate(RollupBucket), int(e.Partition)%RollupShards
		stmts = append(stmts, statement{
			partition: fmt.Sprintf("e%d\x00%d", bucket.Unix(), shard),
			cql:       insertEdge,
			args: []any{bucket, shard, e.Start, int(e.Width / time.Millisecond), e.Sensor, ipOf(e.A), ipOf(e.B),
				e.Partition, e.FirstOffset, int64(e.Packets), int64(e.Bytes), int64(e.Flows), secs},
			size: 120 + len(e.Sensor),
		})
	}
	return w.exec(ctx, stmts)
}

// hoursOf lists the partition buckets that hold windows starting in [from, to].
func hoursOf(from, to time.Time) []time.Time {
	var out []time.Time
	for h := from.Truncate(RollupBucket); !h.After(to); h = h.Add(RollupBucket) {
		out = append(out, h)
	}
	return out
}

// maxRollupHours bounds a rollup read: a range of years from a typo would otherwise ask Cassandra for
// hundreds of thousands of empty partitions.
const maxRollupHours = 24 * 366

// Traffic returns the traffic rows of sensor whose window starts in [from, to], in time order.
func (r *Reader) Traffic(ctx context.Context, sensor string, from, to time.Time) ([]TrafficRow, error) {
	hours := hoursOf(from, to)
	if len(hours) > maxRollupHours {
		return nil, fmt.Errorf("traffic: %d hours asked for; at most %d (a year) at once", len(hours), maxRollupHours)
	}
	var out []TrafficRow
	for _, h := range hours {
		iter := r.s.Query(`SELECT start, step_ms, kafka_partition, first_offset, packets, bytes, proto_packets, proto_bytes,
			in_packets, in_bytes, out_packets, out_bytes, internal_packets, internal_bytes, filtered, decode_errors
			FROM traffic WHERE sensor = ? AND bucket = ? AND start >= ? AND start <= ?`, sensor, h, from, to).WithContext(ctx).Iter()
		var (
			row    TrafficRow
			stepMS int
			pp, pb map[int]int64
			n      [12]int64
		)
		for iter.Scan(&row.Start, &stepMS, &row.Partition, &row.FirstOffset, &n[0], &n[1], &pp, &pb,
			&n[2], &n[3], &n[4], &n[5], &n[6], &n[7], &n[8], &n[9]) {
			row.Sensor, row.Step = sensor, time.Duration(stepMS)*time.Millisecond
			row.Start = row.Start.UTC()
			row.PB = PB{uint64(n[0]), uint64(n[1])}
			row.In, row.Out, row.Internal = PB{uint64(n[2]), uint64(n[3])}, PB{uint64(n[4]), uint64(n[5])}, PB{uint64(n[6]), uint64(n[7])}
			row.Filtered, row.DecodeErrors = uint64(n[8]), uint64(n[9])
			row.Proto = make(map[int]PB, len(pp))
			for k, v := range pp {
				row.Proto[k] = PB{uint64(v), uint64(pb[k])}
			}
			out = append(out, row)
			pp, pb = nil, nil
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("cassandra: read traffic of %s at %s: %w%s", sensor, h.Format(time.RFC3339), err, schemaHint(err))
		}
	}
	return out, nil
}

// Edges returns the edge rollup rows whose window starts in [from, to], of every sensor, in time order.
// The partitions (an hour of a shard each) are read rollupReaders at a time.
func (r *Reader) Edges(ctx context.Context, from, to time.Time) ([]EdgeRow, error) {
	hours := hoursOf(from, to)
	if len(hours) > maxRollupHours {
		return nil, fmt.Errorf("edge rollups: %d hours asked for; at most %d (a year) at once", len(hours), maxRollupHours)
	}
	parts := make([][]EdgeRow, len(hours)*RollupShards)
	errs := make([]error, len(parts))
	sem := make(chan struct{}, rollupReaders)
	var wg sync.WaitGroup
	for i := range parts {
		h, shard := hours[i/RollupShards], i%RollupShards
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			parts[i], errs[i] = r.edgePartition(ctx, h, shard, from, to)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []EdgeRow
	for _, p := range parts {
		out = append(out, p...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// rollupReaders bounds the partitions of edge_rollups read at once.
const rollupReaders = 8

func (r *Reader) edgePartition(ctx context.Context, h time.Time, shard int, from, to time.Time) ([]EdgeRow, error) {
	iter := r.s.Query(`SELECT start, width_ms, sensor, a, b, kafka_partition, first_offset, packets, ip_bytes, flows
		FROM edge_rollups WHERE bucket = ? AND shard = ? AND start >= ? AND start <= ?`, h, shard, from, to).WithContext(ctx).Iter()
	var (
		out      []EdgeRow
		e        EdgeRow
		widthMS  int
		a, b     net.IP
		p, by, f int64
	)
	for iter.Scan(&e.Start, &widthMS, &e.Sensor, &a, &b, &e.Partition, &e.FirstOffset, &p, &by, &f) {
		e.Start, e.Width = e.Start.UTC(), time.Duration(widthMS)*time.Millisecond
		aa, ok1 := netip.AddrFromSlice(a.To16())
		bb, ok2 := netip.AddrFromSlice(b.To16())
		if !ok1 || !ok2 {
			continue
		}
		e.A, e.B = aa.Unmap(), bb.Unmap()
		e.Packets, e.Bytes, e.Flows = uint64(p), uint64(by), uint64(f)
		out = append(out, e)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: read edge rollups at %s shard %d: %w%s", h.Format(time.RFC3339), shard, err, schemaHint(err))
	}
	return out, nil
}

// schemaHint explains a table missing from a keyspace of an older schema version.
func schemaHint(err error) string {
	var re gocql.RequestError
	if errors.As(err, &re) && re.Code() == gocql.ErrCodeInvalid &&
		(strings.Contains(err.Error(), "unconfigured table") || strings.Contains(err.Error(), "does not exist")) {
		return " (the keyspace predates schema version 5: a `capfleet process` of this version migrates it)"
	}
	return ""
}
