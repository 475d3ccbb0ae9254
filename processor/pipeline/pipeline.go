// Package pipeline is the processor's data path: it consumes packet records from Kafka, decodes and
// filters them, aggregates flows, stores packets and flows in Cassandra (and flow records on a Kafka
// topic), and commits offsets only once every sink acknowledged what lies before them.
//
// # Offsets, open flows and restarts
//
// Flows complete on timeouts, long after their first packet was consumed, so an offset cannot simply be
// committed once its packet is stored: a restart from there would have lost the packets of every flow
// still open. Instead each Kafka partition has its own flow table, driven by its packets' timestamps, and
// a commit of offset O on partition P is preceded by
//   - the packets and closed flows before O, stored;
//   - the running totals of P's open flows, upserted under their final key (their uid is derived from the
//     first packet's time and the 5-tuple, so the closing write later overwrites the same rows);
//   - a checkpoint: the serialized table of P, stored in flow_checkpoints under (group, topic, P, O).
//
// A consumer that starts on P at offset O reloads the checkpoint stored for exactly O and carries on: the
// flows it completes have the same uids and totals they would have had without the restart. Every write
// is idempotent, so the work repeated after a crash (from the last commit on) rewrites the same rows. Flow
// versions are ordered by their packet count (the cell timestamp), so a repeated older version never
// overwrites a newer one.
//
// Flow timeouts follow packet time, per partition, which makes a replay deterministic. A partition that
// has been read to its end and stays quiet lets its clock follow the wall clock from its last packet, so
// idle flows still close when traffic stops.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/netflow/ipfix"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/processor/block"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flowfilter"
	"capfleet.dev/capfleet/processor/store"
)

// Config is what the process command's flags set.
type Config struct {
	Topic, Group string
	Sensor       string // name stored with every packet and flow; query packets --sensor selects it
	StorePackets bool
	StoreFlows   bool
	PacketTTL    time.Duration
	FlowTTL      time.Duration
	FlowsTopic   string // optional: closed flows as JSON, keyed by uid
	// RecordsTopic, when set, gets one JSON record per packet the filters keep, with its header fields
	// under tshark's names (packetjson), keyed by the packet's source partition and offset.
	RecordsTopic string
	// IPFIX, when set, exports closed flows as IPFIX over UDP to these collectors (host:port), with
	// IPFIXDomain as the observation domain. Export is fire and forget, as a router's: a failed send is
	// counted (sink_errors{sink="ipfix"}), never retried, and never holds back a commit.
	IPFIX       []string
	IPFIXDomain uint32
	// FlowFilter picks the flow records the sinks get (Cassandra and the flows topic); the others are
	// counted (FlowsFiltered). The flow table and its checkpoints keep every flow: each record written
	// (a running total, then the end) is judged on its own figures.
	FlowFilter *flowfilter.Filter
	// CommitInterval spaces checkpoints and commits (default 1s): each writes every open flow's totals.
	CommitInterval time.Duration
	MaxPollRecords int           // default 5000
	IdleGrace      time.Duration // default 1s: how long a caught-up partition stays quiet before its clock follows the wall
	CheckpointTTL  time.Duration // default 30 days: how long a stopped group can resume its open flows
	// Blocks bounds the packet blocks (default 1 MiB, 16384 packets, 32 hours of the index); a checkpoint
	// also ends the open block of every partition it commits.
	Blocks block.Limits
	// BlockWrites bounds the blocks being compressed and stored at once (default 4).
	BlockWrites int
	// FlowUpdateInterval spaces the writes of open flows' running totals (0: with every commit). Every
	// commit checkpoints the open flows, and a consumer that takes a partition over loads its checkpoint
	// at once and writes those flows with its first checkpoint, so after a crash the totals are late,
	// not lost. Spacing them out divides Cassandra's CPU per packet by several on long-lived traffic.
	FlowUpdateInterval time.Duration
	// Rollups are the traffic counters and edge rollups kept per window (off when both widths are 0,
	// and without Cassandra).
	Rollups RollupConfig
}

// rollups is whether traffic counters or edge rollups are kept: they need Cassandra for their rows and
// their checkpoints.
func (p *Pipeline) rollupsOn() bool {
	return p.cfg.Rollups.on() && p.deps.Writer != nil && p.deps.Reader != nil
}

// flows is whether flows are aggregated: to store them, to publish them, or both.
func (c Config) flows() bool { return c.StoreFlows || c.FlowsTopic != "" || len(c.IPFIX) > 0 }

func (c Config) withDefaults() Config {
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 5000
	}
	if c.IdleGrace <= 0 {
		c.IdleGrace = time.Second
	}
	if c.CheckpointTTL <= 0 {
		c.CheckpointTTL = 30 * 24 * time.Hour
	}
	if c.BlockWrites <= 0 {
		c.BlockWrites = 4
	}
	return c
}

// FlowTable aggregates the flows of one Kafka partition.
type FlowTable interface {
	// Add accounts a decoded packet (one without IP is ignored).
	Add(p *decode.Packet)
	// Expire closes the flows whose idle or active timeout passed at now.
	Expire(now time.Time)
	// Dirty returns the running totals of open flows changed since the last call.
	Dirty() []store.Flow
	// Len is the number of open flows.
	Len() int
	// Latest is the time of the newest packet of an open flow (zero when none is open).
	Latest() time.Time
	// MarshalState serializes the open flows, for a checkpoint.
	MarshalState() ([]byte, error)
}

// Deps are the parts a Pipeline is built from.
type Deps struct {
	Kafka  []kgo.Opt // connection options (kafkaconn)
	Writer *store.Writer
	Reader *store.Reader
	// NewFlowTable makes the table of a partition, from a checkpoint's state (nil: empty). Closed flows
	// (timed out, evicted, finished) are handed to emit.
	NewFlowTable func(state []byte, emit func(store.Flow)) (FlowTable, error)
	// Keep, when set, is the BPF filter: false drops the frame (counted as filtered).
	Keep     func(frame []byte, lt decode.LinkType) bool
	Counters *Counters
	Log      *slog.Logger

	// KeepDecoded, when set, is the display filter, run on the decoded packet with its record's
	// offset: false drops it (counted as filtered).
	KeepDecoded func(p *decode.Packet, offset int64) bool
}

// Pipeline is one consumer of the group.
type Pipeline struct {
	cfg  Config
	deps Deps
	c    *Counters
	log  *slog.Logger
	cl   *kgo.Client

	mu         sync.Mutex // partition state: the poll loop and the rebalance callbacks
	parts      map[int32]*partition
	lastCommit time.Time
	lastCost   time.Duration // how long serializing the open flows took at the last checkpoint
	closed     []store.Flow  // flows closed since the last flush, all partitions
	writes     blockWrites
	lastUpdate time.Time // when open flows' running totals were last written
	closing    bool      // the final checkpoint: everything is written
	unloaded   []int32   // assigned partitions whose checkpoint is not loaded yet
	loadedNew  bool      // flows were loaded since the last update: write them at the next checkpoint
	addrs      [2 * decode.MaxIP]netip.Addr

	records packetrecord.Decoder
	dec     *decode.Decoder
	ipfix   *ipfix.Exporter // nil unless Config.IPFIX
	out     packetRecords   // packet records waiting to be produced (Config.RecordsTopic)
	pkt     decode.Packet
	ready   atomic.Bool
}

// partition is what the pipeline knows about one assigned Kafka partition.
type partition struct {
	id        int32
	flows     FlowTable // loaded at assignment from the committed offset's checkpoint, or at the first record
	loadedAt  int64     // the offset whose checkpoint flows came from
	next      int64     // offset after the last record handled
	epoch     int32
	committed int64 // offset last committed, -1 when none by us
	first     int64 // offset of the first record we handled: where the group had committed
	hwm       int64
	clock     time.Time // newest packet time seen
	lastSeen  time.Time // wall time of the last record
	blocks    *block.Builder
	linkTypes []uint32 // of the packets in the open block
	roll      *rollups // open traffic and edge counters, loaded like flows
	rollAt    int64    // the offset whose checkpoint roll came from
}

// New checks the configuration; Run does the work.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.Topic == "":
		return nil, errors.New("--topic is required")
	case cfg.Group == "":
		return nil, errors.New("--group is required")
	case cfg.Sensor == "" && cfg.StorePackets:
		return nil, errors.New("--sensor is required with --store-packets: packets are stored and queried by sensor")
	case (cfg.StorePackets || cfg.StoreFlows) && deps.Writer == nil:
		return nil, errors.New("a Cassandra writer is required to store packets or flows")
	case cfg.FlowsTopic != "" && (deps.Writer == nil || deps.Reader == nil):
		return nil, errors.New("--flows-topic needs Cassandra (--store-flows or --store-packets): open flows are checkpointed there so that none is lost or split on a restart")
	case len(cfg.IPFIX) > 0 && (deps.Writer == nil || deps.Reader == nil):
		return nil, errors.New("--ipfix needs Cassandra (--store-flows or --store-packets): open flows are checkpointed there so that none is lost or split on a restart")
	case cfg.flows() && (deps.NewFlowTable == nil || deps.Reader == nil):
		return nil, errors.New("storing flows needs a flow table and a Cassandra reader (for checkpoints)")
	}
	if err := cfg.Rollups.Validate(); err != nil {
		return nil, err
	}
	if deps.Counters == nil {
		deps.Counters = &Counters{}
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	p := &Pipeline{cfg: cfg, deps: deps, c: deps.Counters, log: deps.Log, parts: map[int32]*partition{}, dec: decode.NewDecoder()}
	if len(cfg.IPFIX) > 0 {
		exp, err := ipfix.Dial(cfg.IPFIX, ipfix.Config{ObservationDomain: cfg.IPFIXDomain})
		if err != nil {
			return nil, fmt.Errorf("--ipfix: %w", err)
		}
		p.ipfix = exp
	}
	p.writes.init(cfg.BlockWrites)
	return p, nil
}

// Ready reports whether the pipeline joined its group and its last write succeeded.
func (p *Pipeline) Ready() bool {
	return p.ready.Load() && (p.deps.Writer == nil || !p.deps.Writer.Failing())
}

// Run consumes until ctx ends, then stores what it holds, commits, and leaves the group.
func (p *Pipeline) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
	}, p.deps.Kafka...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	p.cl = cl
	defer cl.Close()
	if p.ipfix != nil {
		defer p.ipfix.Close()
	}
	defer p.writes.cancel()
	p.lastCommit, p.lastUpdate = time.Now(), time.Now()
	for {
		// A poll waits at most a second so that commits and quiet partitions' clocks are seen to on time
		// whatever IdleGrace is.
		pollCtx, cancel := context.WithTimeout(ctx, min(p.cfg.IdleGrace, time.Second))
		fetches := cl.PollRecords(pollCtx, p.cfg.MaxPollRecords)
		cancel()
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		err := p.handle(ctx, fetches)
		cl.AllowRebalance()
		if ctx.Err() != nil {
			return p.shutdown()
		}
		if err != nil {
			return err
		}
	}
}

// handle runs one poll's records through the sinks and, when due, checkpoints and commits.
func (p *Pipeline) handle(ctx context.Context, fetches kgo.Fetches) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fetches.EachError(func(topic string, part int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		p.c.KafkaErrors.Add(1)
		p.c.Problem.Failed(fmt.Sprintf("kafka: fetch %s[%d]", topic, part), err)
		p.log.Warn("kafka fetch error", "topic", topic, "partition", part, "err", err)
	})
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || fp.Topic != p.cfg.Topic {
			return
		}
		ps := p.partitionOf(fp.Partition)
		ps.hwm = max(ps.hwm, fp.HighWatermark)
		for _, r := range fp.Records {
			if err = p.record(ctx, ps, r); err != nil {
				return
			}
		}
		if len(fp.Records) > 0 {
			ps.lastSeen = time.Now() // once per poll: a clock read per record costs more than the rest
		}
	})
	if err != nil {
		return err
	}
	if err := p.loadAssigned(ctx); err != nil {
		return err
	}
	p.expireQuiet()
	if err := p.flush(ctx, false); err != nil {
		return err
	}
	// A checkpoint serializes every open flow (under 1 ms and about 110 bytes per thousand flows) and the
	// open rollup counters: with big tables it is spaced out so that it never takes more than a tenth
	// of the time.
	if time.Since(p.lastCommit) >= max(p.cfg.CommitInterval, 10*p.lastCost) {
		if err := p.checkpoint(ctx, nil); err != nil {
			return err
		}
	}
	p.updateLag()
	return nil
}

func (p *Pipeline) partitionOf(id int32) *partition {
	ps := p.parts[id]
	if ps == nil {
		ps = &partition{id: id, committed: -1, next: -1, blocks: block.NewBuilder(store.BlockLimits(p.cfg.Blocks))}
		p.parts[id] = ps
	}
	return ps
}

// record handles one Kafka record. Only a context end makes it fail: a bad record is counted and skipped.
func (p *Pipeline) record(ctx context.Context, ps *partition, r *kgo.Record) error {
	if ps.next >= 0 && r.Offset < ps.next {
		return nil // a record handled already: a fetch may repeat after a rebalance
	}
	if ps.next < 0 {
		ps.first = r.Offset
	}
	// The table loaded at assignment is for the committed offset: a first record elsewhere (the offset
	// was reset) needs that offset's checkpoint instead, usually none.
	if p.cfg.flows() && (ps.flows == nil || (ps.next < 0 && ps.loadedAt != r.Offset)) {
		if ps.flows != nil {
			ps.committed = -1 // not where the group's commit was after all
		}
		if err := p.restore(ctx, ps, r.Offset); err != nil {
			return err
		}
	}
	if p.rollupsOn() && (ps.roll == nil || (ps.next < 0 && ps.rollAt != r.Offset)) {
		if err := p.restoreRollups(ctx, ps, r.Offset); err != nil {
			return err
		}
	}
	ps.next, ps.epoch = r.Offset+1, r.LeaderEpoch
	p.c.RecordsIn.Add(1)
	p.c.Uncommitted.Add(1)
	meta, frame, err := p.records.Decode(r)
	if err != nil {
		p.c.BadRecords.Add(1)
		p.log.Debug("skipping a record that is not a packet record", "err", err)
		return nil
	}
	lt := decode.LinkType(meta.LinkType)
	var traffic *trafficAcc
	if ps.roll != nil {
		traffic = ps.roll.packet(r.Offset, meta.Timestamp, meta.OrigLen, p.cfg.Sensor, ps.id)
	}
	if p.deps.Keep != nil && !p.deps.Keep(frame, lt) {
		p.c.Filtered.Add(1)
		if traffic != nil {
			traffic.Filt++
		}
		return nil
	}
	if reason := p.dec.Decode(frame, lt, meta.Timestamp, meta.OrigLen, &p.pkt); reason == decode.OK {
		p.c.Decoded.Add(1)
	} else {
		p.c.DecodeErrors[reason].Add(1)
		if traffic != nil {
			traffic.DecErr++
		}
	}
	if traffic != nil {
		traffic.classify(&p.pkt, meta.OrigLen)
	}
	if p.deps.KeepDecoded != nil && !p.deps.KeepDecoded(&p.pkt, r.Offset) {
		p.c.Filtered.Add(1)
		if traffic != nil {
			traffic.Filt++
		}
		return nil
	}
	advanced := meta.Timestamp.After(ps.clock)
	if advanced {
		ps.clock = meta.Timestamp
	}
	if p.cfg.RecordsTopic != "" {
		p.out.add(ps.id, r.Offset, &p.pkt, frame)
	}
	if p.cfg.StorePackets {
		bp := block.Packet{Offset: r.Offset, Timestamp: meta.Timestamp.UnixNano(), OrigLen: meta.OrigLen,
			LinkType: uint32(meta.LinkType), Node: meta.Node, Interface: meta.Interface, Data: frame}
		if ps.blocks.Full(&bp) {
			if err := p.sealBlock(ctx, ps); err != nil {
				return err
			}
		}
		ps.blocks.Add(&bp, p.addresses()...)
		if !slices.Contains(ps.linkTypes, bp.LinkType) {
			ps.linkTypes = append(ps.linkTypes, bp.LinkType)
		}
	}
	newFlow := false
	if ps.flows != nil {
		c, counts := ps.flows.(interface{ Created() uint64 })
		var before uint64
		if counts {
			before = c.Created()
		}
		ps.flows.Add(&p.pkt)
		newFlow = counts && c.Created() != before
		// Only a clock that moved forward ends flows, as in pcap flows: a packet older than the clock (a
		// looped or concatenated capture going back in time) opens a flow that would otherwise end at once,
		// a stored flow per packet.
		if advanced {
			ps.flows.Expire(ps.clock)
		}
	}
	if ps.roll != nil {
		ps.roll.edge(r.Offset, &p.pkt, newFlow, p.cfg.Sensor, ps.id)
	}
	return nil
}

// restore gives ps the flow table checkpointed for offset, or an empty one when there is none (a first
// start, or a checkpoint older than CheckpointTTL).
func (p *Pipeline) restore(ctx context.Context, ps *partition, offset int64) error {
	var state []byte
	err := p.retry(ctx, "read flow checkpoint", func() error {
		s, found, err := p.deps.Reader.Checkpoint(ctx, p.cfg.Group, p.cfg.Topic, ps.id, offset)
		if err == nil && !found {
			s = nil
		}
		state = s
		return err
	})
	if err != nil {
		return err
	}
	emit := func(f store.Flow) {
		f.Sensor = p.cfg.Sensor
		if p.sinkGets(&f) {
			p.closed = append(p.closed, f)
		}
	}
	t, err := p.deps.NewFlowTable(state, emit)
	if err != nil {
		// A checkpoint this build cannot read: starting empty splits the flows open at the commit
		// (their packets stay stored) rather than stopping the pipeline for good.
		p.log.Error("flow checkpoint unreadable, starting with an empty flow table", "partition", ps.id, "offset", offset, "err", err)
		if t, err = p.deps.NewFlowTable(nil, emit); err != nil {
			return err
		}
	} else if state != nil {
		p.log.Info("resumed open flows from checkpoint", "partition", ps.id, "offset", offset, "flows", t.Len())
	}
	ps.flows, ps.loadedAt = t, offset
	// Until its next record, a restored partition's clock is its newest flow's, so that a partition that
	// gets nothing more still closes its flows by idling (expireQuiet).
	ps.clock, ps.lastSeen = t.Latest(), time.Now()
	return nil
}

// retry repeats a Cassandra read until it works or ctx ends: the pipeline cannot go on without it.
func (p *Pipeline) retry(ctx context.Context, what string, fn func() error) error {
	delay := retryStart
	for {
		err := fn()
		if err == nil {
			return nil
		}
		p.c.CassandraErrors.Add(1)
		p.ready.Store(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.c.Retries.Add(1)
		p.c.Problem.Failed("cassandra: "+what, err)
		p.log.Warn("cassandra: "+what+" failed, retrying", "err", err, "in", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, retryMax)
	}
}

// expireQuiet lets the clock of a partition that was read to its end, and got nothing new for IdleGrace,
// follow the wall clock from its last packet, so that its idle flows close.
func (p *Pipeline) expireQuiet() {
	now := time.Now()
	for _, ps := range p.parts {
		if ps.flows == nil || ps.next < ps.hwm || now.Sub(ps.lastSeen) < p.cfg.IdleGrace {
			continue
		}
		ps.flows.Expire(ps.clock.Add(now.Sub(ps.lastSeen)))
	}
}

// closedBatch is how many closed flows wait for the next commit at most: flows are stored in blocks, and
// a block per poll (thousands a minute) would cost Cassandra what rows did.
const closedBatch = 8192

// flush stores the closed flows gathered so far (all, or only when there are closedBatch of them) and
// returns once they are acknowledged, or reports a packet block write that failed. Packet blocks are
// stored in the background: checkpoint waits for them.
func (p *Pipeline) flush(ctx context.Context, all bool) error {
	if err := p.writes.failed(); err != nil {
		return p.sinkFailed("store packets", err)
	}
	if err := p.publishRecords(ctx); err != nil {
		return err
	}
	if len(p.closed) > 0 && (all || len(p.closed) >= closedBatch) {
		if p.cfg.StoreFlows {
			if err := p.deps.Writer.WriteFlows(ctx, p.closed, p.cfg.FlowTTL); err != nil {
				return p.sinkFailed("store flows", err)
			}
			p.c.FlowsWritten.Add(uint64(len(p.closed)))
		}
		if err := p.publish(ctx, p.closed); err != nil {
			return err
		}
		p.export(p.closed)
		p.closed = p.closed[:0]
	}
	p.ready.Store(true)
	return nil
}

func (p *Pipeline) sinkFailed(what string, err error) error {
	p.ready.Store(false)
	if !errors.Is(err, context.Canceled) {
		p.c.CassandraErrors.Add(1)
		p.c.Problem.Failed("cassandra: "+what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// checkpoint stores the open flows' totals and tables of the given partitions (all when nil), then
// commits their offsets. Nothing is committed unless everything before it was stored.
func (p *Pipeline) checkpoint(ctx context.Context, only []int32) error {
	now := time.Now()
	for id, ps := range p.parts {
		if only != nil && !slices.Contains(only, id) {
			continue
		}
		if ps.blocks.Len() > 0 {
			if err := p.sealBlock(ctx, ps); err != nil {
				return err
			}
		}
		// A partition read to its end and quiet stores its edge counters of the current window too:
		// no packet may come to close it.
		quiet := ps.next >= ps.hwm && now.Sub(ps.lastSeen) >= p.cfg.IdleGrace
		if err := p.storeRollups(ctx, ps, only != nil || p.closing || quiet); err != nil {
			return err
		}
	}
	if err := p.writes.wait(ctx); err != nil {
		return p.sinkFailed("store packets", err)
	}
	if err := p.flush(ctx, true); err != nil {
		return err
	}
	var (
		updates []store.Flow
		cps     []store.Checkpoint
		commit  = map[int32]kgo.EpochOffset{}
		cost    time.Duration
	)
	// Partitions leaving (only != nil) and the final checkpoint write their open flows' totals whatever
	// the interval: their next owner may not write them for a while.
	updatesDue := only != nil || p.closing || p.loadedNew || p.cfg.FlowUpdateInterval <= 0 || time.Since(p.lastUpdate) >= p.cfg.FlowUpdateInterval
	if updatesDue && only == nil {
		p.lastUpdate, p.loadedNew = time.Now(), false
	}
	for id, ps := range p.parts {
		if only != nil && !slices.Contains(only, id) {
			continue
		}
		// Before the skip below: a partition committed already may still hold flows changed since the
		// last update (restored dirty from a checkpoint, or changed before its commit).
		if ps.flows != nil && updatesDue && p.cfg.StoreFlows {
			for _, f := range ps.flows.Dirty() {
				f.Sensor = p.cfg.Sensor
				if p.sinkGets(&f) {
					updates = append(updates, f)
				}
			}
		}
		if ps.next < 0 || ps.next == ps.committed {
			continue
		}
		if ps.flows != nil {
			began := time.Now()
			state, err := ps.flows.MarshalState()
			cost += time.Since(began)
			if err != nil {
				return fmt.Errorf("partition %d: serialize open flows: %w", id, err)
			}
			cps = append(cps, store.Checkpoint{Group: p.cfg.Group, Topic: p.cfg.Topic, Partition: id, Offset: ps.next, State: state})
		}
		if ps.roll != nil {
			began := time.Now()
			state, err := ps.roll.marshal()
			cost += time.Since(began)
			if err != nil {
				return fmt.Errorf("partition %d: serialize open counters: %w", id, err)
			}
			cps = append(cps, store.Checkpoint{Group: p.cfg.Group, Topic: rollupTopic(p.cfg.Topic), Partition: id, Offset: ps.next, State: state})
		}
		commit[id] = kgo.EpochOffset{Epoch: ps.epoch, Offset: ps.next}
	}
	if len(cps) > 0 {
		p.lastCost = cost
	}
	if len(updates) > 0 {
		if err := p.deps.Writer.WriteFlows(ctx, updates, p.cfg.FlowTTL); err != nil {
			return p.sinkFailed("store open flows", err)
		}
		p.c.FlowUpdates.Add(uint64(len(updates)))
	}
	if len(cps) > 0 {
		if err := p.deps.Writer.WriteCheckpoints(ctx, cps, p.cfg.CheckpointTTL); err != nil {
			return p.sinkFailed("store flow checkpoints", err)
		}
	}
	p.lastCommit = time.Now()
	if len(commit) == 0 {
		return nil
	}
	var commitErr error
	p.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{p.cfg.Topic: commit},
		func(_ *kgo.Client, _ *kmsgOffsetCommitRequest, resp *kmsgOffsetCommitResponse, err error) {
			commitErr = commitError(resp, err)
		})
	if commitErr != nil {
		// Not fatal: the records stay uncommitted and are committed with the next checkpoint, or repeated
		// (idempotently) by whoever owns the partition next.
		p.c.KafkaErrors.Add(1)
		p.c.Problem.Failed("kafka: commit offsets", commitErr)
		p.log.Warn("offset commit failed", "err", commitErr)
		return nil
	}
	p.c.Commits.Add(1)
	p.c.Problem.Cleared()
	for id, eo := range commit {
		ps := p.parts[id]
		if ps.committed >= 0 {
			p.c.Uncommitted.Add(-(eo.Offset - ps.committed))
		} else {
			p.c.Uncommitted.Store(max(0, p.c.Uncommitted.Load()-eo.Offset))
		}
		ps.committed = eo.Offset
	}
	p.recountUncommitted()
	return nil
}

// recountUncommitted derives the gauge from the partitions, which is exact where the incremental
// updates above are not (a partition's first commit does not know where consumption started).
func (p *Pipeline) recountUncommitted() {
	var n int64
	for _, ps := range p.parts {
		if ps.next >= 0 && ps.committed >= 0 {
			n += ps.next - ps.committed
		}
	}
	p.c.Uncommitted.Store(n)
}

func (p *Pipeline) updateLag() {
	var lag, active int64
	for _, ps := range p.parts {
		start := ps.committed
		if start < 0 {
			start = ps.first
		}
		if ps.hwm > start {
			lag += ps.hwm - start
		}
		if ps.flows != nil {
			active += int64(ps.flows.Len())
		}
	}
	p.c.Lag.Store(lag)
	p.c.FlowsActive.Store(active)
}

const (
	retryStart = 100 * time.Millisecond
	retryMax   = 10 * time.Second
)

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// assigned notes the partitions whose open flows are to be loaded (loadAssigned, after the poll).
func (p *Pipeline) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	if !p.cfg.flows() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unloaded = append(p.unloaded, assigned[p.cfg.Topic]...)
}

// loadAssigned loads the checkpoint of each newly assigned partition at the group's committed offset
// without waiting for a record. A consumer that died after a commit left its open flows' latest totals
// only in that checkpoint: a partition that receives nothing more would otherwise never have them
// written. Restored flows are dirty, so the next checkpoint writes them. Runs while rebalances are
// blocked (between poll and AllowRebalance), so the offsets read are the ones consumption resumes from.
func (p *Pipeline) loadAssigned(ctx context.Context) error {
	if len(p.unloaded) == 0 {
		return nil
	}
	offsets, err := kadm.NewClient(p.cl).FetchOffsets(ctx, p.cfg.Group)
	if err = errors.Join(err, offsets.Error()); err != nil {
		// Tried again after the next poll; a record arriving first loads its partition itself.
		p.c.KafkaErrors.Add(1)
		p.log.Warn("could not read the committed offsets of newly assigned partitions", "err", err)
		return nil
	}
	for _, id := range p.unloaded {
		o, ok := offsets.Lookup(p.cfg.Topic, id)
		ps := p.partitionOf(id)
		if !ok || o.At < 0 || ps.flows != nil {
			continue // nothing committed: nothing checkpointed either; or loaded by a record already
		}
		if err := p.restore(ctx, ps, o.At); err != nil {
			return err
		}
		ps.first, ps.committed = o.At, o.At
		p.loadedNew = true
	}
	p.unloaded = p.unloaded[:0]
	return nil
}

// revoked stores and commits what the partitions hold so that their next owner resumes exactly there.
// When Cassandra is away the commit is skipped: the next owner repeats the work instead.
func (p *Pipeline) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := revoked[p.cfg.Topic]
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.checkpoint(ctx, ids); err != nil {
		p.log.Warn("could not checkpoint revoked partitions; their next owner repeats the work since the last commit", "partitions", ids, "err", err)
	}
	p.drop(ids)
}

// lost drops partitions that another member may own already: committing for them could move their
// offset past what that member stored.
func (p *Pipeline) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop(lost[p.cfg.Topic])
}

func (p *Pipeline) drop(ids []int32) {
	for _, id := range ids {
		delete(p.parts, id)
	}
	p.unloaded = slices.DeleteFunc(p.unloaded, func(id int32) bool { return slices.Contains(ids, id) })
	// Packets and closed flows not yet stored stay queued, whichever partition they came from: the
	// partitions kept will commit past them only once they are stored, and storing those of a dropped
	// partition is harmless (the same rows its next owner writes).
	p.recountUncommitted()
	p.updateLag()
}

// shutdown stores and commits everything before leaving, so a rolling restart repeats nothing.
func (p *Pipeline) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.mu.Lock()
	p.closing = true
	err := p.checkpoint(ctx, nil)
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("final checkpoint (the next start repeats the work since the last commit): %w", err)
	}
	return nil
}

// sinkGets says whether the flow filter lets f through to the sinks, counting the flows it keeps back.
func (p *Pipeline) sinkGets(f *store.Flow) bool {
	if p.cfg.FlowFilter.Match(f) {
		return true
	}
	p.c.FlowsFiltered.Add(1)
	return false
}
