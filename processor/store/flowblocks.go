package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/processor/block"
)

// Flows are stored in compressed blocks, as packets are: a flow row cost Cassandra about as much CPU as
// a whole packet block, and a busy link closes thousands of connections a second. A block holds up to
// maxBlockFlows flows of one write; a row of flow_block_index for each hour its flows are active in
// says which of those flows' addresses it holds (a Bloom filter of that hour's flows), so a query reads
// only the blocks of its hours that may match. A replay of old captures closes flows of hundreds of
// hours in one write: one block then, not one per hour, keeps the rows few. A flow written again
// (running totals, then its end) is in several blocks; readers keep its newest version
// (Flow.writeTime), as they do for rows.

const (
	insertFlowBlock = `INSERT INTO flow_blocks (id, flows, codec, data) VALUES (?, ?, ?, ?) USING TTL ?`
	insertFlowIndex = `INSERT INTO flow_block_index (bucket, id, min_ns, max_ns, flows, addrs)
		VALUES (?, ?, ?, ?, ?, ?) USING TTL ?`
	insertFlowHour = `INSERT INTO flow_block_hours (scope, bucket) VALUES (0, ?) USING TTL ?`

	flowBlockMagic = "CFF1"
	maxBlockFlows  = 8192
)

// flowHours is the directory level of flow blocks, for the writer's memory of directory rows.
var flowHours = &indexLevel{width: FlowBucket, index: "flow_block_index", directory: "flow_block_hours"}

// flowHour is what the index row of one hour of a block says: the flows active in it.
type flowHour struct {
	n        int
	min, max int64
	addrs    map[netip.Addr]struct{}
}

// flowBlockStatements turns flows into blocks and their index rows, and directory rows for the hours
// not written lately (dirs, to be noted as written once acknowledged).
func (w *Writer) flowBlockStatements(flows []Flow, secs int) (stmts []statement, dirs []directoryKey, err error) {
	for start := 0; start < len(flows); start += maxBlockFlows {
		part := flows[start:min(start+maxBlockFlows, len(flows))]
		body := []byte(flowBlockMagic)
		hours := map[time.Time]*flowHour{}
		var order []time.Time
		for i := range part {
			f := &part[i]
			if f.UID == "" {
				return nil, nil, fmt.Errorf("flow %s:%d -> %s:%d has no uid", f.OrigAddr, f.OrigPort, f.RespAddr, f.RespPort)
			}
			body = appendFlow(body, f)
			lo, hi := f.Start.UnixNano(), f.End.UnixNano()
			for _, h := range bucketsBetween(f.Start, f.End, FlowBucket) {
				fh := hours[h]
				if fh == nil {
					fh = &flowHour{min: lo, max: hi, addrs: map[netip.Addr]struct{}{}}
					hours[h] = fh
					order = append(order, h)
				}
				fh.n++
				fh.min, fh.max = min(fh.min, lo), max(fh.max, hi)
				for _, a := range endpoints(f) {
					fh.addrs[a] = struct{}{}
				}
			}
		}
		id := gocql.TimeUUID()
		group := "F" + id.String()
		for _, h := range order {
			fh := hours[h]
			index := []byte(block.NewBloom(fh.addrs))
			stmts = append(stmts, statement{partition: group, cql: insertFlowIndex, args: []any{h, id, fh.min, fh.max, fh.n, index, secs}, size: len(index) + 64})
			key := directoryKey{flowHours, "", h.UnixNano()}
			if w.directory.fresh(key) || slices.Contains(dirs, key) {
				continue
			}
			dirs = append(dirs, key)
			stmts = append(stmts, statement{partition: group, cql: insertFlowHour, args: []any{h, directoryTTL(secs)}, size: 32})
		}
		// The block last: once its index rows are written a reader may look for it, and a block whose
		// index write failed is rewritten whole by the retry anyway.
		data := block.Compress(nil, body)
		stmts = append(stmts, statement{partition: group, cql: insertFlowBlock, args: []any{id, len(part), int(block.CodecZstd), data, secs}, size: len(data) + 48})
	}
	return stmts, dirs, nil
}

// appendFlow encodes f: strings and addresses with a length, numbers as varints.
func appendFlow(b []byte, f *Flow) []byte {
	b = appendBytes(b, []byte(f.UID))
	b = appendBytes(b, []byte(f.CommunityID))
	b = appendBytes(b, []byte(f.Sensor))
	b = binary.AppendVarint(b, f.Start.UnixNano())
	b = binary.AppendVarint(b, f.End.UnixNano()-f.Start.UnixNano())
	b = append(b, f.Proto, f.TCPFlags)
	if f.Closed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, v := range []uint64{uint64(f.VLAN), uint64(f.OrigPort), uint64(f.RespPort), f.OrigPkts, f.RespPkts,
		f.OrigBytes, f.RespBytes, f.OrigIPBytes, f.RespIPBytes} {
		b = binary.AppendUvarint(b, v)
	}
	b = appendBytes(b, addrBytes(f.OrigAddr))
	b = appendBytes(b, addrBytes(f.RespAddr))
	b = appendBytes(b, []byte(f.History))
	return appendBytes(b, []byte(f.State))
}

func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.Unmap().AsSlice()
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errFlowBlock = errors.New("corrupt flow block")

// eachFlow decodes a block's body.
func eachFlow(body []byte, fn func(f Flow)) error {
	if len(body) < len(flowBlockMagic) || string(body[:len(flowBlockMagic)]) != flowBlockMagic {
		return fmt.Errorf("%w: no %s header", errFlowBlock, flowBlockMagic)
	}
	r := flowReader{b: body[len(flowBlockMagic):]}
	for len(r.b) > 0 && r.err == nil {
		var f Flow
		f.UID, f.CommunityID, f.Sensor = string(r.bytes()), string(r.bytes()), string(r.bytes())
		start := r.varint()
		f.Start, f.End = time.Unix(0, start).UTC(), time.Unix(0, start+r.varint()).UTC()
		fixed := r.take(3)
		if len(fixed) == 3 {
			f.Proto, f.TCPFlags, f.Closed = fixed[0], fixed[1], fixed[2] == 1
		}
		f.VLAN, f.OrigPort, f.RespPort = uint16(r.uvarint()), uint16(r.uvarint()), uint16(r.uvarint())
		f.OrigPkts, f.RespPkts, f.OrigBytes, f.RespBytes = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		f.OrigIPBytes, f.RespIPBytes = r.uvarint(), r.uvarint()
		f.OrigAddr, _ = netip.AddrFromSlice(r.bytes())
		f.RespAddr, _ = netip.AddrFromSlice(r.bytes())
		f.History, f.State = string(r.bytes()), string(r.bytes())
		if r.err == nil {
			fn(f)
		}
	}
	return r.err
}

type flowReader struct {
	b   []byte
	err error
}

func (r *flowReader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated record", errFlowBlock)
	}
	r.b = nil
}

func (r *flowReader) uvarint() uint64 { return readNext(r, binary.Uvarint) }

func (r *flowReader) varint() int64 { return readNext(r, binary.Varint) }

// readNext reads one value with read (binary.Uvarint or binary.Varint), failing the reader when the body
// ends or the value is too long.
func readNext[T uint64 | int64](r *flowReader, read func([]byte) (T, int)) T {
	v, n := read(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *flowReader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *flowReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	return r.take(int(n))
}

// blockFlows hands fn every flow of the blocks indexed in the hours of [from, to] whose index may hold
// ip (any when ip is not valid), one block's flows at a time and in no particular order; sizeHint, when
// set, first hears how many flows those blocks hold at most. A keyspace older than flow blocks has none.
func (r *Reader) blockFlows(ctx context.Context, from, to time.Time, ip netip.Addr, sizeHint func(flows int), fn func(f Flow)) error {
	ids, err := r.flowBlockIDs(ctx, from, to, ip)
	if err != nil || len(ids) == 0 {
		return err
	}
	if sizeHint != nil {
		n := 0
		for _, b := range ids {
			n += b.flows
		}
		sizeHint(n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A day of flows is hundreds of blocks: fetched one after another, the reader waits on each round
	// trip and on Cassandra's read of the blob in turn, so a few are in flight while one is decoded.
	jobs, results := make(chan indexedBlock), make(chan fetchedBlock, flowFetchers)
	var wg sync.WaitGroup
	for range min(flowFetchers, len(ids)) {
		wg.Go(func() {
			for id := range jobs {
				b := r.fetchFlowBlock(ctx, id.id, id.flows)
				select {
				case results <- b:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		defer close(jobs)
		for _, id := range ids {
			select {
			case jobs <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	for b := range results {
		for _, f := range b.flows {
			fn(f)
		}
		if b.err == nil {
			continue
		}
		if !b.damaged || r.OnSkip == nil {
			return b.err
		}
		// What was decoded before the damage was handed on; the rest is reported.
		r.OnSkip("flow block "+b.id.String(), b.err)
	}
	return ctx.Err()
}

// flowFetchers is how many flow blocks a read fetches at once.
const flowFetchers = 4

// indexedBlock is a flow block to read and how many flows its index rows say it holds.
type indexedBlock struct {
	id    gocql.UUID
	flows int
}

// flowBlockIDs are the blocks indexed in the hours of [from, to] that may hold ip, each once.
func (r *Reader) flowBlockIDs(ctx context.Context, from, to time.Time, ip netip.Addr) ([]indexedBlock, error) {
	hours, err := r.flowHours(ctx, from, to)
	if err != nil || len(hours) == 0 {
		return nil, err
	}
	seen := map[gocql.UUID]int{} // where in ids
	var ids []indexedBlock
	lo, hi := from.UnixNano(), to.UnixNano()
	for _, h := range hours {
		iter := r.s.Query(`SELECT id, min_ns, max_ns, flows, addrs FROM flow_block_index WHERE bucket = ?`, h).
			WithContext(ctx).PageSize(1000).Iter()
		var (
			id          gocql.UUID
			first, last int64
			flows       int
			addrs       []byte
		)
		for iter.Scan(&id, &first, &last, &flows, &addrs) {
			if last < lo || first > hi || (ip.IsValid() && !block.Bloom(addrs).MayContain(ip)) {
				continue
			}
			// A block's flows are counted in each hour they are active in; the sum bounds the block.
			if i, ok := seen[id]; ok {
				ids[i].flows = min(ids[i].flows+flows, maxBlockFlows)
				continue
			}
			seen[id] = len(ids)
			ids = append(ids, indexedBlock{id, flows})
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("cassandra: read the flow index of %s: %w", h.Format(time.RFC3339), err)
		}
	}
	return ids, nil
}

// fetchedBlock is what reading one flow block gave: its flows, and an error that either fails the read
// or, when damaged, only says the block could not be read to its end.
type fetchedBlock struct {
	id      gocql.UUID
	flows   []Flow
	err     error
	damaged bool
}

func (r *Reader) fetchFlowBlock(ctx context.Context, id gocql.UUID, flows int) fetchedBlock {
	var (
		codec int
		data  []byte
	)
	err := r.s.Query(`SELECT codec, data FROM flow_blocks WHERE id = ?`, id).WithContext(ctx).Scan(&codec, &data)
	if isNotFound(err) {
		return fetchedBlock{id: id} // indexed, but its own write has not landed (or expired first): its flows are in a retry
	}
	if err != nil {
		return fetchedBlock{id: id, err: fmt.Errorf("cassandra: read flow block %s: %w", id, err)}
	}
	out := fetchedBlock{id: id, flows: make([]Flow, 0, flows)}
	body, err := block.Decompress(nil, data, block.Codec(codec))
	if err == nil {
		err = eachFlow(body, func(f Flow) { out.flows = append(out.flows, f) })
	}
	if err != nil {
		out.err, out.damaged = fmt.Errorf("flow block %s: %w", id, err), true
	}
	return out
}

// flowHours are the hours of [from, to] that hold flow blocks, read from their directory so that a range
// of years costs one query, not one per hour.
func (r *Reader) flowHours(ctx context.Context, from, to time.Time) ([]time.Time, error) {
	iter := r.s.Query(`SELECT bucket FROM flow_block_hours WHERE scope = 0 AND bucket >= ? AND bucket <= ?`,
		bucketOf(from, FlowBucket), to).WithContext(ctx).PageSize(5000).Iter()
	var (
		out []time.Time
		b   time.Time
	)
	for iter.Scan(&b) {
		out = append(out, b)
	}
	if err := iter.Close(); err != nil {
		if noTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cassandra: list the hours holding flows: %w", err)
	}
	return out, nil
}
