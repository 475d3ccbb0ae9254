package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/batchproducer"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/packetrecord"
)

// Topic produces each frame as one packet record (the sensor's format) to a
// Kafka topic through batches it builds itself (batchproducer, as the sensor
// does): idempotent, acks from all in-sync replicas, partitioned by flow like
// the sensor.
type Topic struct {
	cl    *kgo.Client
	prod  *batchproducer.Producer
	w     *batchproducer.Writer // Send is called from one goroutine
	topic string
	node  string
	iface string
	done  func(int, error) // Send's, the same for every packet of a run
	// flushTimeout bounds Flush when its context has no deadline.
	flushTimeout time.Duration
}

// The producer's buffer: records and bytes in flight at most. Send waits when it is full.
var (
	topicBufferRecords = 50000
	topicBufferBytes   = 64 << 20
)

// topicBatchBytes bounds a batch's records before compression: with the batch and frame headers,
// the 1 MiB a topic takes by default (max.message.bytes 1048588).
const topicBatchBytes = 1<<20 - 256

// defaultConnectTimeout is how long the start-up check waits for the brokers;
// a variable so tests of an unreachable broker need not wait that long.
var defaultConnectTimeout = 15 * time.Second

// TopicOptions names the source of the records in their headers.
type TopicOptions struct {
	Node      string // "node" header: where the replay ran
	Interface string // "iface" header
	// ConnectTimeout bounds the check, at start, that the brokers answer and the topic exists.
	ConnectTimeout time.Duration
	// DeliveryTimeout bounds how long a record may wait for the broker before it counts as failed.
	DeliveryTimeout time.Duration
	// CreatePartitions, when positive, creates a missing topic with this many partitions (replication
	// factor 1): for a terminal run without the operator, which otherwise owns topics.
	CreatePartitions int32
}

// OpenTopic connects to Kafka and checks that topic exists, so an unreachable
// broker or a wrong name is a clear error before the replay starts.
func OpenTopic(ctx context.Context, cfg kafkaconn.Config, topic string, o TopicOptions) (*Topic, error) {
	if topic == "" {
		return nil, errors.New("topic: no name given")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 2 * time.Minute
	}
	cl, err := workload.NewPacketsProducer(ctx, workload.Producer{
		Kafka:            cfg,
		Topic:            topic,
		Timeout:          o.ConnectTimeout,
		CreatePartitions: o.CreatePartitions,
		MissingHint:      "the operator creates the topics resources declare; --create-topic N makes it here",
	})
	if err != nil {
		return nil, err
	}
	compressor, err := workload.PacketsCompressor(kgo.Lz4Compression())
	if err != nil {
		cl.Close()
		return nil, err
	}
	t := &Topic{cl: cl, topic: topic, node: o.Node, iface: o.Interface, flushTimeout: o.DeliveryTimeout}
	t.prod, err = batchproducer.New(ctx, cl, batchproducer.Config{
		Topic: topic, Compressor: compressor, Linger: workload.PacketsLinger, BatchBytes: topicBatchBytes,
		BufferBytes: topicBufferBytes, BufferRecords: topicBufferRecords, DeliveryTimeout: o.DeliveryTimeout,
		Done: t.produced,
	})
	if err != nil {
		cl.Close()
		return nil, err
	}
	t.w = t.prod.NewWriter(nil)
	return t, nil
}

func (t *Topic) String() string { return "topic " + t.topic }

// Send hands the record to the producer; the outcome arrives with the broker's ack. The record
// is written straight into its partition's batch, so sending allocates nothing; while the buffer
// is full Send waits for the broker.
func (t *Topic) Send(p Packet, done func(int, error)) { t.SendAt(p, done, time.Now()) }

// SendAt is Send with the record's timestamp (the time it was produced) given: now, or the time
// after a wait for room, which it returns for the next packet.
func (t *Topic) SendAt(p Packet, done func(int, error), now time.Time) time.Time {
	t.done = done
	m := packetrecord.Meta{
		Timestamp: p.Timestamp,
		Node:      t.node,
		Interface: t.iface,
		LinkType:  p.LinkType,
		OrigLen:   max(p.Length, len(p.Data)),
	}
	for !t.w.Append(now, m, p.Data) {
		t.w.Wait(nil)
		now = time.Now()
	}
	return now
}

// produced tells Send's done of each record of a batch: the batch's frame bytes are spread over
// its records, so the run's totals are exact.
func (t *Topic) produced(_ any, records, bytes int, err error) {
	if err != nil {
		err = fmt.Errorf("%s: %w", t, err)
	}
	for i := range records {
		size := bytes / records
		if i == 0 {
			size += bytes % records
		}
		t.done(size, err)
	}
}

// Flush sends what is buffered and waits for the broker's answer to every record handed over,
// until ctx ends (or the delivery timeout, without a deadline); what is left counts as failed. The
// Topic sends nothing after it.
func (t *Topic) Flush(ctx context.Context) error {
	t.w.Close()
	timeout := t.flushTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return t.prod.Close(timeout)
}

func (t *Topic) Close() error {
	t.w.Close()
	_ = t.prod.Close(0)
	t.cl.Close()
	return nil
}
