package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
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
	blockIndexColumns = `(sensor, bucket, kafka_partition, first_offset, last_offset, min_ns, max_ns, packets, stored_bytes, linktypes, addrs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
)

// indexLevel is one of the two widths a block is indexed at: its index table and the directory of the
// buckets that table holds.
type indexLevel struct {
	width               time.Duration
	index, directory    string
	insertIndex, insert string
}

var (
	minuteIndex = newIndexLevel(PacketBucket, "packet_block_index", "packet_block_minutes")
	hourIndex   = newIndexLevel(PacketHour, "packet_block_index_hourly", "packet_block_hours")
)

func newIndexLevel(w time.Duration, index, directory string) *indexLevel {
	return &indexLevel{width: w, index: index, directory: directory,
		insertIndex: "INSERT INTO " + index + " " + blockIndexColumns,
		insert:      "INSERT INTO " + directory + " (sensor, bucket) VALUES (?, ?) USING TTL ?"}
}

// WriteBlocks stores blocks (body and index rows) with the given time to live (0: forever) and returns
// once Cassandra acknowledged all of them. Rewriting a block, as a consumer repeating work does, replaces
// its rows.
func (w *Writer) WriteBlocks(ctx context.Context, blocks []Block, ttl time.Duration) error {
	secs := ttlSeconds(ttl)
	stmts := make([]statement, 0, 2*len(blocks))
	var dirs []directoryKey
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
		level, buckets := indexBuckets(b)
		for _, bucket := range buckets {
			stmts = append(stmts, statement{
				partition: group,
				cql:       level.insertIndex,
				args: []any{b.Sensor, bucket, b.Partition, b.FirstOffset, b.LastOffset, b.MinTime, b.MaxTime, b.Packets,
					len(b.Data), lts, []byte(b.Index), secs},
				size: len(b.Index) + 96,
			})
			key := directoryKey{level, b.Sensor, bucket.UnixNano()}
			if w.directory.fresh(key) || slices.Contains(dirs, key) {
				continue
			}
			dirs = append(dirs, key)
			stmts = append(stmts, statement{partition: group, cql: level.insert, args: []any{b.Sensor, bucket, directoryTTL(secs)}, size: 48})
		}
	}
	if err := w.exec(ctx, stmts); err != nil {
		return err
	}
	w.directory.written(dirs)
	return nil
}

// A sensor's blocks of one minute (or hour) come within seconds of each other, each with a row for the
// bucket in its directory: the same row written again, which costs Cassandra what a new one does. The writer
// skips a row it wrote in the last directoryReuse, and writes directory rows to live that much longer
// than the blocks, so that a block written in that window never outlives its minute's row.
const directoryReuse = 10 * time.Minute

func directoryTTL(secs int) int {
	if secs == 0 {
		return 0
	}
	return secs + int(directoryReuse/time.Second)
}

type directoryKey struct {
	level  *indexLevel
	sensor string
	bucket int64
}

// recentRows remembers the directory rows written lately. Safe for concurrent use.
type recentRows struct {
	mu   sync.Mutex
	when map[directoryKey]time.Time
}

func (r *recentRows) fresh(k directoryKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.when[k]
	return ok && time.Since(t) < directoryReuse
}

// written notes rows acknowledged now; entries past directoryReuse are dropped as the set grows.
func (r *recentRows) written(keys []directoryKey) {
	if len(keys) == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.when == nil {
		r.when = map[directoryKey]time.Time{}
	}
	if len(r.when) > 4096 {
		for k, t := range r.when {
			if now.Sub(t) >= directoryReuse {
				delete(r.when, k)
			}
		}
	}
	for _, k := range keys {
		r.when[k] = now
	}
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
	seen := map[blockKey]bool{}
	var out []BlockRef
	for _, level := range []*indexLevel{minuteIndex, hourIndex} {
		buckets, err := r.indexedBuckets(ctx, level, sensor, from, to)
		if err != nil {
			return nil, err
		}
		for _, b := range buckets {
			if out, err = r.readIndex(ctx, level, sensor, b, from, to, seen, out); err != nil {
				return nil, err
			}
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

type blockKey struct {
	partition int32
	offset    int64
}

// readIndex appends to out the blocks of one index partition active in [from, to] and not seen yet.
func (r *Reader) readIndex(ctx context.Context, level *indexLevel, sensor string, bucket, from, to time.Time,
	seen map[blockKey]bool, out []BlockRef) ([]BlockRef, error) {
	iter := r.s.Query(`SELECT kafka_partition, first_offset, last_offset, min_ns, max_ns, packets, stored_bytes, linktypes, addrs
		FROM `+level.index+` WHERE sensor = ? AND bucket = ?`, sensor, bucket).WithContext(ctx).PageSize(1000).Iter()
	for {
		var (
			ref BlockRef
			lts []int64
			idx []byte
		)
		if !iter.Scan(&ref.Partition, &ref.FirstOffset, &ref.LastOffset, &ref.MinTime, &ref.MaxTime, &ref.Packets, &ref.StoredBytes, &lts, &idx) {
			break
		}
		k := blockKey{ref.Partition, ref.FirstOffset}
		if ref.MaxTime < from.UnixNano() || ref.MinTime > to.UnixNano() || seen[k] {
			continue
		}
		seen[k] = true
		ref.Meta.FirstOffset, ref.Index = ref.FirstOffset, idx
		for _, lt := range lts {
			ref.LinkTypes = append(ref.LinkTypes, uint32(lt))
		}
		out = append(out, ref)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: read %s of %s at %s: %w", level.index, sensor, bucket.Format(time.RFC3339), err)
	}
	return out, nil
}

// indexedBuckets lists the buckets of sensor in [from, to] that hold blocks at one index level, read
// from that level's directory; none (no error) on a keyspace whose schema predates the level.
func (r *Reader) indexedBuckets(ctx context.Context, level *indexLevel, sensor string, from, to time.Time) ([]time.Time, error) {
	iter := r.s.Query(`SELECT bucket FROM `+level.directory+` WHERE sensor = ? AND bucket >= ? AND bucket <= ?`,
		sensor, bucketOf(from, level.width), bucketOf(to, level.width)).WithContext(ctx).PageSize(5000).Iter()
	var out []time.Time
	var b time.Time
	for iter.Scan(&b) {
		out = append(out, b.UTC())
	}
	if err := iter.Close(); err != nil {
		if noTable(err) {
			return nil, nil // a keyspace not migrated to this level yet holds no blocks indexed at it
		}
		return nil, fmt.Errorf("cassandra: read %s of %s: %w", level.directory, sensor, err)
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

// indexBuckets says where a block is indexed: under each minute its packets fall in when they are a
// few (block.Meta.Fine), otherwise under each hour. A block built elsewhere, without either list, gets
// every bucket of its time range at the level that makes the fewest rows.
func indexBuckets(b *Block) (*indexLevel, []time.Time) {
	lo, hi := time.Unix(0, b.MinTime), time.Unix(0, b.MaxTime)
	switch {
	case len(b.Fine) > 0:
		return minuteIndex, startsOf(b.Fine, PacketBucket)
	case len(b.Buckets) > 0:
		return hourIndex, startsOf(b.Buckets, PacketHour)
	case hi.Sub(lo) < fineSpan:
		return minuteIndex, bucketsBetween(lo, hi, PacketBucket)
	default:
		return hourIndex, bucketsBetween(lo, hi, PacketHour)
	}
}

// fineSpan is the time range under which a block without bucket lists is indexed by minute.
const fineSpan = 4 * PacketBucket

// startsOf turns slice starts (ns) into the distinct buckets of width w holding them, in order.
func startsOf(starts []int64, w time.Duration) []time.Time {
	out := make([]time.Time, 0, len(starts))
	for _, ns := range starts {
		t := bucketOf(time.Unix(0, ns), w)
		if len(out) == 0 || !out[len(out)-1].Equal(t) {
			out = append(out, t)
		}
	}
	return out
}

// BlockLimits completes lim with the index's bucket widths: a block's slices of time must be the
// index's minutes and hours.
func BlockLimits(lim block.Limits) block.Limits {
	lim.Bucket, lim.FineBucket = PacketHour, PacketBucket
	return lim
}

// noTable says whether Cassandra refused a query because its table does not exist.
func noTable(err error) bool {
	var re gocql.RequestError
	return errors.As(err, &re) && re.Code() == gocql.ErrCodeInvalid &&
		(strings.Contains(re.Message(), "unconfigured table") || strings.Contains(re.Message(), "does not exist"))
}
