package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/processor/block"
)

// Block is one stored block of packets: where it comes from, what it holds, and its compressed body.
type Block struct {
	Sensor    string
	Partition int32
	block.Meta
	LinkTypes []uint32
	Index     block.Bloom
	Codec     block.Codec
	Data      []byte
}

// Key names a block in errors and logs the way an operator would look it up in cqlsh.
func (b *Block) Key() string {
	return fmt.Sprintf("packet_blocks(sensor=%q, kafka_partition=%d, first_offset=%d)", b.Sensor, b.Partition, b.FirstOffset)
}

const (
	insertBlock = `INSERT INTO packet_blocks (sensor, kafka_partition, first_offset, last_offset, min_ns, max_ns, packets, raw_bytes, codec, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
	insertBlockMinute = `INSERT INTO packet_block_minutes (sensor, bucket) VALUES (?, ?) USING TTL ?`
	insertBlockIndex  = `INSERT INTO packet_block_index (sensor, bucket, kafka_partition, first_offset, last_offset, min_ns, max_ns, packets, stored_bytes, linktypes, addrs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
)

// WriteBlocks stores blocks (body and index rows) with the given time to live (0: forever) and returns
// once Cassandra acknowledged all of them. Rewriting a block, as a consumer repeating work does, replaces
// its rows.
func (w *Writer) WriteBlocks(ctx context.Context, blocks []Block, ttl time.Duration) error {
	secs := ttlSeconds(ttl)
	stmts := make([]statement, 0, 2*len(blocks))
	for i := range blocks {
		b := &blocks[i]
		// All rows of a block go as one request when they fit in a batch: Cassandra's cost here is per
		// request far more than per byte. A batch of several partitions is fine for rows that are
		// written together and idempotent; the writer splits it at MaxBatchBytes.
		group := fmt.Sprintf("b%s\x00%d\x00%d", b.Sensor, b.Partition, b.FirstOffset)
		stmts = append(stmts, statement{
			partition: group,
			cql:       insertBlock,
			args: []any{b.Sensor, b.Partition, b.FirstOffset, b.LastOffset, b.MinTime, b.MaxTime, b.Packets,
				b.RawBytes, int(b.Codec), b.Data, secs},
			size: len(b.Data) + 64,
		})
		lts := make([]int64, len(b.LinkTypes))
		for j, lt := range b.LinkTypes {
			lts[j] = int64(lt)
		}
		for _, bucket := range indexBuckets(b) {
			stmts = append(stmts, statement{
				partition: group,
				cql:       insertBlockIndex,
				args: []any{b.Sensor, bucket, b.Partition, b.FirstOffset, b.LastOffset, b.MinTime, b.MaxTime, b.Packets,
					len(b.Data), lts, []byte(b.Index), secs},
				size: len(b.Index) + 96,
			})
			stmts = append(stmts, statement{partition: group, cql: insertBlockMinute, args: []any{b.Sensor, bucket, secs}, size: 48})
		}
	}
	return w.exec(ctx, stmts)
}

// BlockRef is an index row: enough to decide whether to fetch the block.
type BlockRef struct {
	Partition   int32
	FirstOffset int64
	block.Meta
	StoredBytes int
	LinkTypes   []uint32
	Index       block.Bloom
}

// BlockRefs lists the blocks of sensor active in [from, to], each once, by their first packet time.
func (r *Reader) BlockRefs(ctx context.Context, sensor string, from, to time.Time) ([]BlockRef, error) {
	type key struct {
		p int32
		o int64
	}
	seen := map[key]bool{}
	var out []BlockRef
	minutes, err := r.blockMinutes(ctx, sensor, from, to)
	if err != nil || minutes == nil {
		return nil, err
	}
	for _, b := range minutes {
		iter := r.s.Query(`SELECT kafka_partition, first_offset, last_offset, min_ns, max_ns, packets, stored_bytes, linktypes, addrs
			FROM packet_block_index WHERE sensor = ? AND bucket = ?`, sensor, b).WithContext(ctx).PageSize(1000).Iter()
		for {
			var (
				ref BlockRef
				lts []int64
				idx []byte
			)
			if !iter.Scan(&ref.Partition, &ref.FirstOffset, &ref.LastOffset, &ref.MinTime, &ref.MaxTime, &ref.Packets, &ref.StoredBytes, &lts, &idx) {
				break
			}
			if ref.MaxTime < from.UnixNano() || ref.MinTime > to.UnixNano() || seen[key{ref.Partition, ref.FirstOffset}] {
				continue
			}
			seen[key{ref.Partition, ref.FirstOffset}] = true
			ref.Meta.FirstOffset, ref.Index = ref.FirstOffset, idx
			for _, lt := range lts {
				ref.LinkTypes = append(ref.LinkTypes, uint32(lt))
			}
			out = append(out, ref)
		}
		if err := iter.Close(); err != nil {
			if noTable(err) {
				return nil, nil // a keyspace of schema version 1, not migrated yet: no blocks, only packet rows
			}
			return nil, fmt.Errorf("cassandra: read the block index of %s at %s: %w", sensor, b.Format(time.RFC3339), err)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MinTime != out[j].MinTime {
			return out[i].MinTime < out[j].MinTime
		}
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].FirstOffset < out[j].FirstOffset
	})
	return out, nil
}

// blockMinutes lists the index minutes of sensor in [from, to] that hold blocks; nil (no error) on a
// keyspace without the block tables.
func (r *Reader) blockMinutes(ctx context.Context, sensor string, from, to time.Time) ([]time.Time, error) {
	iter := r.s.Query(`SELECT bucket FROM packet_block_minutes WHERE sensor = ? AND bucket >= ? AND bucket <= ?`,
		sensor, bucketOf(from, PacketBucket), bucketOf(to, PacketBucket)).WithContext(ctx).PageSize(5000).Iter()
	out := []time.Time{}
	var b time.Time
	for iter.Scan(&b) {
		out = append(out, b.UTC())
	}
	if err := iter.Close(); err != nil {
		if noTable(err) {
			return nil, nil // a keyspace of schema version 1, not migrated yet: no blocks, only packet rows
		}
		return nil, fmt.Errorf("cassandra: read the minutes of %s that hold blocks: %w", sensor, err)
	}
	return out, nil
}

// ReadBlock fetches one block; found is false when its row is gone (expired, or an index row written
// by a consumer that died before the body).
func (r *Reader) ReadBlock(ctx context.Context, sensor string, partition int32, firstOffset int64) (b Block, found bool, err error) {
	b = Block{Sensor: sensor, Partition: partition}
	b.FirstOffset = firstOffset
	var codec int
	err = r.s.Query(`SELECT last_offset, min_ns, max_ns, packets, raw_bytes, codec, data FROM packet_blocks
		WHERE sensor = ? AND kafka_partition = ? AND first_offset = ?`, sensor, partition, firstOffset).WithContext(ctx).
		Scan(&b.LastOffset, &b.MinTime, &b.MaxTime, &b.Packets, &b.RawBytes, &codec, &b.Data)
	if err != nil {
		if isNotFound(err) {
			return b, false, nil
		}
		return b, false, fmt.Errorf("cassandra: read %s: %w", b.Key(), err)
	}
	b.Codec = block.Codec(codec)
	return b, true, nil
}

// NewBlock compresses a sealed block of sensor's Kafka partition for storage. Its Data may go back to
// block.ReleaseCompressed once written.
func NewBlock(sensor string, partition int32, s block.Sealed, linkTypes []uint32) Block {
	return Block{Sensor: sensor, Partition: partition, Meta: s.Meta, LinkTypes: linkTypes, Index: s.Index,
		Codec: block.CodecZstd, Data: block.CompressPooled(s.Body)}
}

// indexBuckets are the minutes a block is indexed under: those its packets fall in. The builder cuts
// with PacketBucket as its Bucket (see BlockLimits); a block from elsewhere gets its whole range.
func indexBuckets(b *Block) []time.Time {
	if len(b.Buckets) == 0 {
		return bucketsBetween(time.Unix(0, b.MinTime), time.Unix(0, b.MaxTime), PacketBucket)
	}
	out := make([]time.Time, 0, len(b.Buckets))
	for _, ns := range b.Buckets {
		t := bucketOf(time.Unix(0, ns), PacketBucket)
		if len(out) == 0 || !out[len(out)-1].Equal(t) {
			out = append(out, t)
		}
	}
	return out
}

// BlockLimits completes lim with the index's bucket width: a block's slices of time must be the
// index's minutes.
func BlockLimits(lim block.Limits) block.Limits {
	lim.Bucket = PacketBucket
	return lim
}

// noTable says whether Cassandra refused a query because its table does not exist.
func noTable(err error) bool {
	var re gocql.RequestError
	return errors.As(err, &re) && re.Code() == gocql.ErrCodeInvalid &&
		(strings.Contains(re.Message(), "unconfigured table") || strings.Contains(re.Message(), "does not exist"))
}
