// Package batchproducer produces packet records to a Kafka topic in record batches it builds itself.
//
// franz-go's producer keeps a Record, a promise and a place in a batch for every record, and on
// small packets that per-record path cost more CPU than capture and compression together. Here a
// Writer appends each packet's record straight into its partition's open batch (the record format
// of packetrecord, partitioned by packetrecord.FlowHash as its Partitioner does), a batch is
// compressed once when it is sealed, and its outcome is told once, with its record count. The
// requests go through a franz-go client, which keeps the connections, TLS, SASL and versions.
//
// It is idempotent as franz-go's producer is: one producer id, a sequence number per partition
// that only a written batch advances, one batch in flight per partition, and a batch that is not
// answered is sent again unchanged, so the broker writes it once. Every record ends in Done: written,
// or failed with the broker's error or because Close ran out of time.
package batchproducer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config says where records go and how they are batched and bounded.
type Config struct {
	Topic string
	// Compressor compresses each batch's records (nil: none): what franz-go takes as
	// kgo.WithCompressor.
	Compressor kgo.Compressor
	// Linger is how long an open batch waits for more records, by the clock Append and Tick are given.
	Linger time.Duration
	// BatchBytes bounds a batch's records before compression (a topic takes at most 1 MiB by default).
	BatchBytes int
	// BufferBytes and BufferRecords bound what is held: records in open batches and batches not yet
	// answered. Append fails when either is reached.
	BufferBytes, BufferRecords int
	// Done is told the outcome of every batch: its tag (the Writer's), its records, the bytes of their
	// frames, and nil or why Kafka did not take them. Called from the producer's goroutines.
	Done func(tag any, records, frameBytes int, err error)
	// RequestTimeout is how long the broker may take to answer a produce request.
	RequestTimeout time.Duration
	// DeliveryTimeout, when positive, fails a batch the broker has not taken this long after its
	// first try; otherwise a batch is tried until the broker takes it or Close's time is up.
	DeliveryTimeout time.Duration
	Log             *slog.Logger
}

// Producer sends the batches its Writers seal, one sender goroutine per partition.
type Producer struct {
	cl  *kgo.Client
	cfg Config
	tab atomic.Pointer[table]

	chunkBytes, chunkRecords int // how much of the bound a Writer takes at a time

	mu          sync.Mutex // guards the bound
	heldBytes   int
	heldRecords int
	room        chan struct{} // closed, and replaced, when something is released

	ctx      context.Context // ends at Close's deadline: requests in flight end with it
	cancel   context.CancelFunc
	stopped  chan struct{} // closed by Close: no Writer adds batches any more
	startMu  sync.Mutex    // guards closed and starting senders, so none starts once Close waits for them
	closed   bool
	senders  sync.WaitGroup
	watcher  sync.WaitGroup
	refresh  chan struct{}
	id       int64 // the producer id every partition starts with
	epoch    int16
	freeMu   sync.Mutex
	freeRaw  [][]byte
	freeWire [][]byte
	batches  sync.Pool
}

// table is the topic as the last metadata said: its id and partitions. A topic that grows gets a
// new table with the old partitions in it.
type table struct {
	topicID [16]byte
	parts   []*partition
}

// partition is one partition's queue of sealed batches and its sender's state.
type partition struct {
	p      *Producer
	id     int32
	leader atomic.Int32 // -1: unknown
	mu     sync.Mutex
	queue  []*batch
	ready  chan struct{}
	// The sender's own: the producer id and epoch its batches carry and the next sequence number.
	pid   int64
	epoch int16
	seq   int32
}

// Retry backoff after an error the broker or the connection may get over.
const (
	retryMin = 100 * time.Millisecond
	retryMax = time.Second
	// metadataInterval is how often the topic's leaders and partition count are read again when
	// nothing went wrong (franz-go's default metadata age is 5 minutes).
	metadataInterval = 30 * time.Second
	// freeKept bounds the buffers kept for reuse of each kind.
	freeKept = 64
)

// New returns a Producer for cfg.Topic through cl, which must reach the brokers (see
// workload.NewPacketsProducer). It asks for a producer id and reads the topic's partitions.
func New(ctx context.Context, cl *kgo.Client, cfg Config) (*Producer, error) {
	if cfg.BatchBytes <= 0 || cfg.BufferBytes <= 0 || cfg.BufferRecords <= 0 || cfg.Done == nil {
		return nil, errors.New("batchproducer: BatchBytes, BufferBytes, BufferRecords and Done are required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Producer{
		cl: cl, cfg: cfg, room: make(chan struct{}), stopped: make(chan struct{}), refresh: make(chan struct{}, 1),
		// A Writer takes an eighth of the bound at a time at most, so a few Writers cannot hold it all
		// in credit they have not used.
		chunkBytes:   max(min(256<<10, cfg.BufferBytes/8), 1),
		chunkRecords: max(min(2048, cfg.BufferRecords/8), 1),
	}
	p.batches.New = func() any { return new(batch) }
	p.ctx, p.cancel = context.WithCancel(context.Background())
	id, epoch, err := p.initProducerID(ctx)
	if err != nil {
		return nil, err
	}
	p.id, p.epoch = id, epoch
	if err := p.loadMetadata(ctx); err != nil {
		p.Close(0)
		return nil, err
	}
	p.watcher.Add(1)
	go p.watchMetadata()
	return p, nil
}

// Close sends what the Writers sealed (call it once every Writer is closed) for up to timeout, then
// fails what is left, and returns once Done has been told of every batch. The client is the caller's.
func (p *Producer) Close(timeout time.Duration) error {
	select {
	case <-p.stopped:
		return nil
	default:
	}
	close(p.stopped)
	p.startMu.Lock()
	p.closed = true
	p.startMu.Unlock()
	done := make(chan struct{})
	go func() { p.senders.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(timeout):
		err = fmt.Errorf("kafka did not take every batch within %s", timeout)
	}
	p.cancel()
	<-done
	p.watcher.Wait()
	return err
}

// hold grants a Writer another part of the bound: up to a chunk, at least need bytes and one
// record, or nothing when that would pass the bound. A Writer whose own unused credit (mineBytes,
// mineRecords) is all that is held is always granted need, so a record larger than the chunk goes
// through.
func (p *Producer) hold(need, mineBytes, mineRecords int) (bytes, records int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bytes = max(need, min(p.chunkBytes, p.cfg.BufferBytes-p.heldBytes))
	records = min(p.chunkRecords, p.cfg.BufferRecords-p.heldRecords)
	alone := p.heldBytes == mineBytes && p.heldRecords == mineRecords
	switch {
	case alone:
		records = max(records, 1)
	case records < 1 || p.heldBytes+bytes > p.cfg.BufferBytes:
		return 0, 0
	}
	p.heldBytes += bytes
	p.heldRecords += records
	return bytes, records
}

// release gives back part of the bound and wakes the Writers waiting for room.
func (p *Producer) release(bytes, records int) {
	if bytes == 0 && records == 0 {
		return
	}
	p.mu.Lock()
	p.heldBytes -= bytes
	p.heldRecords -= records
	close(p.room)
	p.room = make(chan struct{})
	p.mu.Unlock()
}

// roomSignal is closed at the next release.
func (p *Producer) roomSignal() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.room
}

// Held is what the producer holds: records in open batches, sealed or in flight, and the credit its
// Writers took and have not used.
func (p *Producer) Held() (bytes, records int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heldBytes, p.heldRecords
}

func (p *Producer) newBatch(pt *partition, tag any) *batch {
	b := p.batches.Get().(*batch)
	*b = batch{part: pt, tag: tag, raw: p.takeRaw()}
	return b
}

// free returns a finished batch's buffers: raw, or wire when the batch went compressed.
func (p *Producer) free(b *batch) {
	switch {
	case b.raw != nil:
		p.putRaw(b.raw)
	case b.wire != nil:
		p.putWire(b.wire)
	}
	*b = batch{}
	p.batches.Put(b)
}

func (p *Producer) takeRaw() []byte {
	p.freeMu.Lock()
	defer p.freeMu.Unlock()
	if n := len(p.freeRaw); n > 0 {
		b := p.freeRaw[n-1]
		p.freeRaw = p.freeRaw[:n-1]
		return b[:headerLen]
	}
	return make([]byte, headerLen, 16<<10)
}

func (p *Producer) putRaw(b []byte) {
	p.freeMu.Lock()
	if len(p.freeRaw) < freeKept {
		p.freeRaw = append(p.freeRaw, b)
	}
	p.freeMu.Unlock()
}

// takeWire is a buffer of at least n bytes' capacity for a compressed batch.
func (p *Producer) takeWire(n int) []byte {
	p.freeMu.Lock()
	defer p.freeMu.Unlock()
	for i := len(p.freeWire) - 1; i >= 0; i-- {
		if b := p.freeWire[i]; cap(b) >= n {
			p.freeWire[i] = p.freeWire[len(p.freeWire)-1]
			p.freeWire = p.freeWire[:len(p.freeWire)-1]
			return b[:0]
		}
	}
	return make([]byte, 0, n+n/4)
}

func (p *Producer) putWire(b []byte) {
	p.freeMu.Lock()
	if len(p.freeWire) < freeKept {
		p.freeWire = append(p.freeWire, b)
	}
	p.freeMu.Unlock()
}

// finish tells Done the batch's outcome and gives back what it held.
func (p *Producer) finish(b *batch, err error) {
	p.cfg.Done(b.tag, b.records, b.frameBytes, err)
	p.release(b.held, b.records)
	p.free(b)
}

func (pt *partition) enqueue(b *batch) {
	pt.mu.Lock()
	pt.queue = append(pt.queue, b)
	pt.mu.Unlock()
	select {
	case pt.ready <- struct{}{}:
	default:
	}
}

// next is the partition's oldest sealed batch, waiting for one; nil once the producer stopped and
// the queue is empty.
func (pt *partition) next() *batch {
	for {
		pt.mu.Lock()
		if len(pt.queue) > 0 {
			b := pt.queue[0]
			n := copy(pt.queue, pt.queue[1:])
			pt.queue[n] = nil
			pt.queue = pt.queue[:n]
			pt.mu.Unlock()
			return b
		}
		pt.mu.Unlock()
		select {
		case <-pt.ready:
		case <-pt.p.stopped:
			pt.mu.Lock()
			empty := len(pt.queue) == 0
			pt.mu.Unlock()
			if empty {
				return nil
			}
		}
	}
}

// send delivers the partition's batches in order until the producer stops.
func (pt *partition) send() {
	defer pt.p.senders.Done()
	for b := pt.next(); b != nil; b = pt.next() {
		pt.p.finish(b, pt.deliver(b))
	}
}

// deliver sends b until the broker writes it, refuses it for good, or the producer's time is up.
// The batch keeps its sequence numbers across tries, so a try that was written but not answered is
// recognised, not written twice.
func (pt *partition) deliver(b *batch) error {
	backoff := retryMin
	first := time.Now()
	for tries := 1; ; tries++ {
		stamp(b.wire, pt.pid, pt.epoch, pt.seq)
		err, retry := pt.produce(b)
		if err == nil {
			pt.seq = nextSeq(pt.seq, b.records)
			return nil
		}
		if !retry || pt.p.ctx.Err() != nil {
			return err
		}
		if d := pt.p.cfg.DeliveryTimeout; d > 0 && time.Since(first) > d {
			return fmt.Errorf("not delivered within %s: %w", d, err)
		}
		if tries == 1 || tries%30 == 0 {
			pt.p.cfg.Log.Warn("producing a batch failed, retrying", "topic", pt.p.cfg.Topic, "partition", pt.id,
				"records", b.records, "tries", tries, "error", err)
		}
		select {
		case <-pt.p.ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

// errNoLeader is a partition whose leader the last metadata did not name.
var errNoLeader = errors.New("no leader known for the partition")

// produce sends b once and says whether an error is worth another try.
func (pt *partition) produce(b *batch) (err error, retry bool) {
	p := pt.p
	leader := pt.leader.Load()
	if leader < 0 {
		p.staleMetadata()
		return errNoLeader, true
	}
	tp := kmsg.NewProduceRequestTopicPartition()
	tp.Partition = pt.id
	tp.Records = b.wire
	t := kmsg.NewProduceRequestTopic()
	t.Topic, t.TopicID = p.cfg.Topic, p.tab.Load().topicID
	t.Partitions = []kmsg.ProduceRequestTopicPartition{tp}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(p.cfg.RequestTimeout / time.Millisecond)
	req.Topics = []kmsg.ProduceRequestTopic{t}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RequestTimeout+10*time.Second)
	resp, err := p.cl.Broker(int(leader)).Request(ctx, req)
	cancel()
	if err != nil {
		p.staleMetadata()
		return fmt.Errorf("partition %d: %w", pt.id, err), true
	}
	code, ok := partitionCode(resp.(*kmsg.ProduceResponse), pt.id)
	if !ok {
		return fmt.Errorf("partition %d: the broker's answer does not name it", pt.id), true
	}
	err = kerr.ErrorForCode(code)
	switch {
	case err == nil, errors.Is(err, kerr.DuplicateSequenceNumber):
		return nil, false
	case errors.Is(err, kerr.OutOfOrderSequenceNumber), errors.Is(err, kerr.UnknownProducerID),
		errors.Is(err, kerr.InvalidProducerIDMapping), errors.Is(err, kerr.InvalidProducerEpoch):
		// The broker lost this producer's state for the partition, or has other numbers than ours:
		// as franz-go's idempotent producer does, numbering starts again, under a new id of the
		// partition's own.
		if rerr := pt.renew(); rerr != nil {
			return fmt.Errorf("partition %d: %v; a new producer id: %w", pt.id, err, rerr), true
		}
		p.cfg.Log.Warn("the broker refused the partition's sequence numbers; numbering again under a new producer id",
			"topic", p.cfg.Topic, "partition", pt.id, "error", err)
		return fmt.Errorf("partition %d: %w", pt.id, err), true
	case kerr.IsRetriable(err) && !errors.Is(err, kerr.CorruptMessage):
		p.staleMetadata()
		return fmt.Errorf("partition %d: %w", pt.id, err), true
	}
	return fmt.Errorf("partition %d: %w", pt.id, err), false
}

// partitionCode is the error code the response gives partition id (of the one topic sent).
func partitionCode(resp *kmsg.ProduceResponse, id int32) (int16, bool) {
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			if rp.Partition == id {
				return rp.ErrorCode, true
			}
		}
	}
	return 0, false
}

// renew gives the partition a producer id of its own and starts its numbering again.
func (pt *partition) renew() error {
	ctx, cancel := context.WithTimeout(pt.p.ctx, pt.p.cfg.RequestTimeout)
	defer cancel()
	id, epoch, err := pt.p.initProducerID(ctx)
	if err != nil {
		return err
	}
	pt.pid, pt.epoch, pt.seq = id, epoch, 0
	return nil
}

func (p *Producer) initProducerID(ctx context.Context) (int64, int16, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil {
		return 0, 0, fmt.Errorf("kafka: asking for a producer id: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, 0, fmt.Errorf("kafka: asking for a producer id: %w", err)
	}
	return resp.ProducerID, resp.ProducerEpoch, nil
}

// staleMetadata asks the watcher to read the topic's metadata now.
func (p *Producer) staleMetadata() {
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

// watchMetadata reads the topic's metadata every metadataInterval, and at once (at most every
// retryMin) when a sender met an error that may mean its leader moved.
func (p *Producer) watchMetadata() {
	defer p.watcher.Done()
	tick := time.NewTicker(metadataInterval)
	defer tick.Stop()
	var warned time.Time
	for {
		select {
		case <-p.stopped:
			return
		case <-tick.C:
		case <-p.refresh:
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RequestTimeout)
		// Senders ask again after each failed try: while the brokers are away, say so every
		// metadataInterval, not every try.
		if err := p.loadMetadata(ctx); err != nil && p.ctx.Err() == nil && time.Since(warned) >= metadataInterval {
			p.cfg.Log.Warn("reading the topic's metadata failed", "topic", p.cfg.Topic, "error", err)
			warned = time.Now()
		}
		cancel()
		select {
		case <-p.stopped:
			return
		case <-time.After(retryMin):
		}
	}
}

// loadMetadata reads the topic's id, partitions and leaders; partitions new to the producer get a
// sender and a new table.
func (p *Producer) loadMetadata(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(p.cfg.Topic)
	req.Topics = []kmsg.MetadataRequestTopic{rt}
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil {
		return err
	}
	var mt *kmsg.MetadataResponseTopic
	for i := range resp.Topics {
		if t := &resp.Topics[i]; t.Topic != nil && *t.Topic == p.cfg.Topic {
			mt = t
		}
	}
	if mt == nil {
		return fmt.Errorf("topic %q: not in the brokers' answer", p.cfg.Topic)
	}
	if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
		return fmt.Errorf("topic %q: %w", p.cfg.Topic, err)
	}
	if len(mt.Partitions) == 0 {
		return fmt.Errorf("topic %q: no partitions", p.cfg.Topic)
	}
	old := p.tab.Load()
	var parts []*partition
	if old != nil {
		parts = old.parts
	}
	grown := len(mt.Partitions) > len(parts)
	for len(parts) < len(mt.Partitions) {
		pt := &partition{p: p, id: int32(len(parts)), ready: make(chan struct{}, 1), pid: p.id, epoch: p.epoch}
		pt.leader.Store(-1)
		parts = append(parts, pt)
	}
	for _, mp := range mt.Partitions {
		if mp.Partition >= 0 && int(mp.Partition) < len(parts) {
			leader := mp.Leader
			if kerr.ErrorForCode(mp.ErrorCode) != nil {
				leader = -1
			}
			parts[mp.Partition].leader.Store(leader)
		}
	}
	if grown || old.topicID != mt.TopicID {
		p.tab.Store(&table{topicID: mt.TopicID, parts: parts})
	}
	if grown {
		p.startSenders(parts[lenParts(old):])
	}
	return nil
}

func (p *Producer) startSenders(parts []*partition) {
	p.startMu.Lock()
	defer p.startMu.Unlock()
	if p.closed {
		return
	}
	for _, pt := range parts {
		p.senders.Add(1)
		go pt.send()
	}
}

func lenParts(t *table) int {
	if t == nil {
		return 0
	}
	return len(t.parts)
}
