package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/packetrecord"
)

// Topic produces each frame as one packet record (the sensor's format) to a
// Kafka topic, with the idempotent producer and acks from all in-sync
// replicas, partitioned by flow like the sensor does.
type Topic struct {
	cl      *kgo.Client
	topic   string
	node    string
	iface   string
	ring    *recordRing // Send is called from one goroutine
	promise func(*kgo.Record, error)
}

// The producer's buffer: records and bytes in flight at most. Send waits when it is full, as
// franz-go's Produce would, and franz-go's own bounds sit above these so they never fail a record.
const (
	topicBufferRecords = 50000
	topicBufferBytes   = 64 << 20
)

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
		Options: append(workload.PacketsProducerTuning(kgo.Lz4Compression()),
			kgo.RecordDeliveryTimeout(o.DeliveryTimeout),
			kgo.MaxBufferedRecords(topicBufferRecords+1),
			kgo.MaxBufferedBytes(2*topicBufferBytes),
			// packetrecord.Partitioner's partitions, from the flow hash the ring computed
			kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int { return partition }))),
	})
	if err != nil {
		return nil, err
	}
	t := &Topic{cl: cl, topic: topic, node: o.Node, iface: o.Interface, ring: newRecordRing(topicBufferRecords, topicBufferBytes)}
	t.promise = t.produced
	return t, nil
}

func (t *Topic) String() string { return "topic " + t.topic }

// Send hands the record to the producer; the outcome arrives with the broker's ack. The record
// is built in the Topic's ring and goes back to it from the promise, with done as its tag, so
// sending allocates nothing; while the ring is full Send waits for the broker.
func (t *Topic) Send(p Packet, done func(int, error)) { t.SendAt(p, done, time.Now()) }

// SendAt is Send with the record's timestamp (the time it was produced) given: now, or the time
// after a wait for room, which it returns for the next packet.
func (t *Topic) SendAt(p Packet, done func(int, error), now time.Time) time.Time {
	m := packetrecord.Meta{
		Timestamp: p.Timestamp,
		Node:      t.node,
		Interface: t.iface,
		LinkType:  p.LinkType,
		OrigLen:   max(p.Length, len(p.Data)),
	}
	waits := t.ring.waits
	rec := t.ring.encode(m, p.Data, done)
	if t.ring.waits != waits {
		now = time.Now()
	}
	rec.Timestamp = now
	t.cl.Produce(context.Background(), rec, t.promise)
	return now
}

func (t *Topic) produced(r *kgo.Record, err error) {
	size, done := t.ring.release(r)
	if err != nil {
		err = fmt.Errorf("%s: %w", t, err)
	}
	if done != nil {
		done(size, err)
	}
}

// Flush waits for the broker's answer to every record handed over.
func (t *Topic) Flush(ctx context.Context) error { return t.cl.Flush(ctx) }

func (t *Topic) Close() error { t.cl.Close(); return nil }
