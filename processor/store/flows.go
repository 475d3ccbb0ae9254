package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"capfleet.dev/capfleet/processor/flow"
)

// Flow is one stored connection record, Zeek conn.log style: "orig" is the side that sent the first packet.
type Flow struct {
	UID         string // deterministic, from the first packet time and key: see flow.Flow.UID
	CommunityID string
	Sensor      string
	Start, End  time.Time
	Proto       uint8
	VLAN        uint16
	OrigAddr    netip.Addr
	OrigPort    uint16
	RespAddr    netip.Addr
	RespPort    uint16
	OrigPkts    uint64
	RespPkts    uint64
	OrigBytes   uint64
	RespBytes   uint64
	OrigIPBytes uint64
	RespIPBytes uint64
	TCPFlags    uint8
	History     string
	State       string
	// Tunnel is the encapsulation the flow came in (flow.Tunnel.String), "" for none. The flows
	// topic carries it; stored flow blocks do not (their encoding predates it).
	Tunnel string
	// Closed is false for a flow still open when it was written (a checkpoint of its running totals).
	Closed bool
	// CIC are the flow's CICFlowMeter features when the pipeline computes them (nil otherwise): the
	// flows topic carries them, and Cassandra's flow_features table.
	CIC *flow.CIC
}

// writeTime orders the versions of one flow: a version with more packets is newer, and the closing write
// beats the last checkpoint of the same totals. Using it as the cell timestamp means a replayed older
// version (a restarted or rebalanced consumer) never overwrites a newer one, whatever the arrival order.
func (f *Flow) writeTime() int64 {
	t := int64(f.OrigPkts+f.RespPkts) * 2
	if f.Closed {
		t++
	}
	return t
}

const flowCols = `uid, community_id, sensor, start_ns, end_ns, proto, vlan, orig_h, orig_p, resp_h, resp_p,
	orig_pkts, resp_pkts, orig_bytes, resp_bytes, orig_ip_bytes, resp_ip_bytes, tcp_flags, history, conn_state, closed`

const (
	insertFlowByTime = `INSERT INTO flows_by_time (bucket, shard, ` + flowCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`
	insertFlowByIP = `INSERT INTO flows_by_ip (ip, bucket, ` + flowCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`
)

func (f *Flow) values() []any {
	return []any{f.UID, f.CommunityID, f.Sensor, f.Start.UnixNano(), f.End.UnixNano(), int(f.Proto), int(f.VLAN),
		ipOf(f.OrigAddr), int(f.OrigPort), ipOf(f.RespAddr), int(f.RespPort),
		int64(f.OrigPkts), int64(f.RespPkts), int64(f.OrigBytes), int64(f.RespBytes), int64(f.OrigIPBytes), int64(f.RespIPBytes),
		int(f.TCPFlags), f.History, f.State, f.Closed}
}

func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.Unmap().AsSlice())
}

// WriteFlows stores flows (running totals or final ones) in blocks indexed under every hour they were
// active in, and returns once Cassandra acknowledged all of it.
func (w *Writer) WriteFlows(ctx context.Context, flows []Flow, ttl time.Duration) error {
	stmts, dirs, err := w.flowBlockStatements(flows, ttlSeconds(ttl))
	if err != nil {
		return err
	}
	stmts = append(stmts, featureStatements(flows, ttlSeconds(ttl))...)
	if err := w.exec(ctx, stmts); err != nil {
		return err
	}
	w.directory.written(dirs)
	return nil
}

// writeFlowRows upserts flows as rows of schema versions 1 and 2 (by time, by each endpoint): what
// keyspaces written before flow blocks hold, which the readers still read.
func (w *Writer) writeFlowRows(ctx context.Context, flows []Flow, ttl time.Duration) error {
	secs := ttlSeconds(ttl)
	var stmts []statement
	for i := range flows {
		f := &flows[i]
		vals := f.values()
		size := 160 + len(f.History) + len(f.Sensor)
		for _, b := range bucketsBetween(f.Start, f.End, FlowBucket) {
			shard := flowShard(f.UID)
			args := append(append([]any{b, shard}, vals...), secs, f.writeTime())
			stmts = append(stmts, statement{partition: w.flowGroup(fmt.Sprintf("t%d\x00%d", b.UnixNano(), shard)), cql: insertFlowByTime, args: args, size: size})
			for _, a := range endpoints(f) {
				args := append(append([]any{ipOf(a), b}, vals...), secs, f.writeTime())
				stmts = append(stmts, statement{partition: w.flowGroup(fmt.Sprintf("i%s\x00%d", a, b.UnixNano())), cql: insertFlowByIP, args: args, size: size})
			}
		}
	}
	return w.exec(ctx, stmts)
}

// flowGroup puts a flow row's partition in one of Concurrency groups, each sent as unlogged batches of
// many partitions. A flow is three small rows in three partitions (by time, by each address), and
// Cassandra's cost is per request far more than per row: one request per row kept the pipeline at a
// few thousand flows a second. Rows of one partition still share a group, so they batch together.
func (w *Writer) flowGroup(partition string) string {
	h := fnv.New32a()
	h.Write([]byte(partition))
	return "f" + strconv.Itoa(int(h.Sum32())%w.opts.Concurrency)
}

// flowShard spreads an hour's flows over FlowShards partitions.
func flowShard(uid string) int {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return int(h.Sum32() % FlowShards)
}

func endpoints(f *Flow) []netip.Addr {
	o, r := f.OrigAddr.Unmap(), f.RespAddr.Unmap()
	if !o.IsValid() {
		return nil
	}
	if o == r || !r.IsValid() {
		return []netip.Addr{o}
	}
	return []netip.Addr{o, r}
}

// FlowsByIP returns the flows with ip as either endpoint that were active at some time in [from, to],
// oldest first. One partition read per hour of the range.
func (r *Reader) FlowsByIP(ctx context.Context, ip netip.Addr, from, to time.Time) ([]Flow, error) {
	ip = ip.Unmap()
	return r.flows(ctx, from, to, ip, func(b time.Time) [][]any {
		return [][]any{{ipOf(ip), b}}
	}, `SELECT `+flowCols+` FROM flows_by_ip WHERE ip = ? AND bucket = ?`)
}

// FlowsBetween returns every flow active at some time in [from, to], oldest first.
func (r *Reader) FlowsBetween(ctx context.Context, from, to time.Time) ([]Flow, error) {
	return r.flows(ctx, from, to, netip.Addr{}, func(b time.Time) [][]any {
		parts := make([][]any, FlowShards)
		for shard := range FlowShards {
			parts[shard] = []any{b, shard}
		}
		return parts
	}, `SELECT `+flowCols+` FROM flows_by_time WHERE bucket = ? AND shard = ?`)
}

func (r *Reader) flows(ctx context.Context, from, to time.Time, ip netip.Addr, partitions func(bucket time.Time) [][]any, cql string) ([]Flow, error) {
	if to.Before(from) {
		return nil, fmt.Errorf("time range: --to %s is before --from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	// A flow is written again as its totals grow, and sits in every hour it spans: keep its newest version.
	// The index by uid points into out rather than holding flows, which a day of them made slow to grow.
	var out []Flow
	at := map[string]int{}
	keep := func(f Flow) {
		if f.Start.After(to) || f.End.Before(from) || (ip.IsValid() && f.OrigAddr != ip && f.RespAddr != ip) {
			return
		}
		if i, seen := at[f.UID]; !seen {
			at[f.UID] = len(out)
			out = append(out, f)
		} else if f.writeTime() > out[i].writeTime() {
			out[i] = f
		}
	}
	hint := func(n int) {
		out = make([]Flow, 0, n)
		at = make(map[string]int, n)
	}
	if err := r.blockFlows(ctx, from, to, ip, hint, keep); err != nil {
		return nil, err
	}
	legacy, err := r.hasLegacyFlows(ctx)
	if err != nil {
		return nil, err
	}
	var hours []time.Time
	if legacy {
		hours = bucketsBetween(from, to, FlowBucket)
	}
	for _, b := range hours {
		for _, args := range partitions(b) {
			iter := r.s.Query(cql, args...).WithContext(ctx).PageSize(1000).Iter()
			for {
				f, ok := scanFlow(iter.Scan)
				if !ok {
					break
				}
				keep(f)
			}
			if err := iter.Close(); err != nil {
				return nil, fmt.Errorf("cassandra: read flows at %s: %w", b.Format(time.RFC3339), err)
			}
		}
	}
	return sortedFlows(out), nil
}

// sortedFlows orders flows by start, then uid. Sorting keys and moving each flow once is several times
// quicker than sorting the flows themselves, which are large to swap.
func sortedFlows(fs []Flow) []Flow {
	type key struct {
		start int64
		uid   string
		i     int
	}
	keys := make([]key, len(fs))
	for i := range fs {
		keys[i] = key{fs[i].Start.UnixNano(), fs[i].UID, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		return strings.Compare(a.uid, b.uid)
	})
	out := make([]Flow, len(fs))
	for i, k := range keys {
		out[i] = fs[k.i]
	}
	return out
}

// hasLegacyFlows says whether the flow rows of schema versions 1 and 2 hold anything: reading them means
// one query per hour and shard of the range, which a keyspace written with flow blocks must not pay.
func (r *Reader) hasLegacyFlows(ctx context.Context) (bool, error) {
	if r.legacyFlows == nil {
		var uid string
		err := r.s.Query(`SELECT uid FROM flows_by_time LIMIT 1`).WithContext(ctx).Scan(&uid)
		if err != nil && !isNotFound(err) {
			return false, fmt.Errorf("cassandra: look for flow rows of schema version 1: %w", err)
		}
		has := err == nil
		r.legacyFlows = &has
	}
	return *r.legacyFlows, nil
}

func scanFlow(scan func(dest ...any) bool) (Flow, bool) {
	var (
		f                                Flow
		start, end                       int64
		proto, vlan, oport, rport, flags int
		orig, resp                       net.IP
		opk, rpk, ob, rb, oib, rib       int64
	)
	if !scan(&f.UID, &f.CommunityID, &f.Sensor, &start, &end, &proto, &vlan, &orig, &oport, &resp, &rport,
		&opk, &rpk, &ob, &rb, &oib, &rib, &flags, &f.History, &f.State, &f.Closed) {
		return f, false
	}
	f.Start, f.End = time.Unix(0, start).UTC(), time.Unix(0, end).UTC()
	f.Proto, f.VLAN = uint8(proto), uint16(vlan)
	f.OrigAddr, _ = netip.AddrFromSlice(orig)
	f.RespAddr, _ = netip.AddrFromSlice(resp)
	f.OrigAddr, f.RespAddr = f.OrigAddr.Unmap(), f.RespAddr.Unmap()
	f.OrigPort, f.RespPort = uint16(oport), uint16(rport)
	f.OrigPkts, f.RespPkts, f.OrigBytes, f.RespBytes = uint64(opk), uint64(rpk), uint64(ob), uint64(rb)
	f.OrigIPBytes, f.RespIPBytes = uint64(oib), uint64(rib)
	f.TCPFlags = uint8(flags)
	return f, true
}

const insertCheckpoint = `INSERT INTO flow_checkpoints (consumer_group, topic, kafka_partition, kafka_offset, chunk, chunks, state)
	VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`

// checkpointChunk bounds one checkpoint row: Cassandra refuses a mutation over half a commit log segment
// (16 MiB by default), and a big table of open flows can exceed that.
const checkpointChunk = 1 << 20

// Checkpoint is the open-flow state of one Kafka partition, valid when consuming resumes at Offset.
type Checkpoint struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
	State     []byte
}

// WriteCheckpoints stores checkpoints; ttl should outlive the longest a group may stay stopped.
func (w *Writer) WriteCheckpoints(ctx context.Context, cps []Checkpoint, ttl time.Duration) error {
	secs := ttlSeconds(ttl)
	var stmts []statement
	for _, c := range cps {
		n := max(1, (len(c.State)+checkpointChunk-1)/checkpointChunk)
		for i := range n {
			chunk := c.State[min(i*checkpointChunk, len(c.State)):min((i+1)*checkpointChunk, len(c.State))]
			stmts = append(stmts, statement{
				// One chunk per batch: together they could pass the batch size limit.
				partition: fmt.Sprintf("c%s\x00%s\x00%d\x00%d", c.Group, c.Topic, c.Partition, i),
				cql:       insertCheckpoint,
				args:      []any{c.Group, c.Topic, c.Partition, c.Offset, i, n, chunk, secs},
				size:      len(chunk) + 64,
			})
		}
	}
	return w.exec(ctx, stmts)
}

// Checkpoint reads the state stored for exactly this offset; found is false when there is none or when
// some of its chunks are missing (a write that never completed, so never followed by a commit).
func (r *Reader) Checkpoint(ctx context.Context, group, topic string, partition int32, offset int64) (state []byte, found bool, err error) {
	iter := r.s.Query(`SELECT chunk, chunks, state FROM flow_checkpoints
		WHERE consumer_group = ? AND topic = ? AND kafka_partition = ? AND kafka_offset = ?`,
		group, topic, partition, offset).WithContext(ctx).Iter()
	var (
		chunk, chunks, seen int
		part                []byte
	)
	for iter.Scan(&chunk, &chunks, &part) {
		if chunk != seen {
			break
		}
		state = append(state, part...)
		seen++
	}
	if err := iter.Close(); err != nil {
		return nil, false, fmt.Errorf("cassandra: read flow checkpoint %s/%s/%d@%d: %w", group, topic, partition, offset, err)
	}
	if seen == 0 || seen != chunks {
		return nil, false, nil
	}
	if state == nil {
		state = []byte{}
	}
	return state, true, nil
}
