package workload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/packetrecord"
)

// Producer says how to produce packet records to a packets topic and how to
// check, before the first packet, that the topic is there.
type Producer struct {
	Kafka kafkaconn.Config
	Topic string
	// Timeout bounds the check that the brokers answer and hold the topic.
	Timeout time.Duration
	// WaitForKafka asks again until Timeout: a sensor may start before
	// Kafka does. Without it one failed lookup ends the check.
	WaitForKafka bool
	// CreatePartitions, when positive, creates a missing topic with this many
	// partitions (replication factor 1); otherwise a missing topic is an error.
	CreatePartitions int32
	// MissingHint, when set, is added in parentheses to the missing-topic error.
	MissingHint string
	// Options are added to the client's (buffering, linger, compression...).
	Options []kgo.Opt
}

// PacketsProducerTuning is how packet records are batched, from BenchmarkPublish and
// BenchmarkPublishPaced (sensor) against the broker of hack/kafka.sh: a 20 ms linger, so a
// partition's batch waits for more records before it is sent, which under load fills batches
// without delaying a quiet link by much (a live sensor spends less CPU a packet than with 5 ms:
// fewer, larger batches, so fewer requests, responses and wake-ups of franz-go's goroutines); 1 MiB
// batches, the most a default topic takes (max.message.bytes 1048588); and the codec: lz4 cost the
// client more CPU than snappy or none when franz-go's pure-Go lz4 compressed (on small packet records
// about 300 ns a record against 200 and 0) but the broker the least (it decompresses every batch to
// validate it, and stores every byte: about 450 ns a record with lz4, 900 with snappy, 800 with none,
// on this machine); it is now liblz4's, with smaller frame blocks than franz-go's (see
// newLz4Batches). The sensor and the replay into a topic build their own batches (batchproducer)
// with the same batch size and codec; this is franz-go's per-record path with that tuning, which
// the benchmark's bare producer holds them against.
func PacketsProducerTuning(codec kgo.CompressionCodec) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ProducerLinger(PacketsLinger),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.ProducerBatchCompression(codec, kgo.NoCompression()),
	}
	if codec == kgo.Lz4Compression() {
		opts = append(opts, kgo.WithCompressor(newLz4Batches()))
	}
	return opts
}

// PacketsLinger is how long PacketsProducerTuning (and the replay into a topic) lets a partition's
// batch wait for more records.
const PacketsLinger = 20 * time.Millisecond

// lookupRetry is how often WaitForKafka asks the brokers again.
const lookupRetry = 500 * time.Millisecond

// NewPacketsProducer returns a client producing to p.Topic: idempotent
// (franz-go's default), acks from all in-sync replicas, partitioned by flow
// so that a flow's packets stay in order, and checked: an unreachable broker,
// refused credentials or a missing topic is one line of error before the
// first packet, not a stream of failed produces after it.
func NewPacketsProducer(ctx context.Context, p Producer) (*kgo.Client, error) {
	opts := append([]kgo.Opt{
		kgo.DefaultProduceTopic(p.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(packetrecord.Partitioner()),
	}, p.Options...)
	cl, err := p.Kafka.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	if err := p.check(ctx, cl); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func (p *Producer) check(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	lookup := p.lookupOnce
	if p.WaitForKafka {
		lookup = p.lookupUntil
	}
	topics, err := lookup(ctx, adm)
	if err != nil {
		return err
	}
	return p.checkDetail(ctx, adm, topics[p.Topic])
}

func (p *Producer) brokers() string { return strings.Join(p.Kafka.Brokers, ",") }

func (p *Producer) lookupOnce(ctx context.Context, adm *kadm.Client) (kadm.TopicDetails, error) {
	topics, err := adm.ListTopics(ctx, p.Topic)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("kafka %s: no answer within %s: %w", p.brokers(), p.Timeout, err)
	case err != nil:
		return nil, fmt.Errorf("kafka %s: looking up topic %q: %w", p.brokers(), p.Topic, err)
	}
	return topics, nil
}

// lookupUntil asks until the brokers answer or the timeout ends; refused
// credentials end it at once, since asking again will not change them.
func (p *Producer) lookupUntil(ctx context.Context, adm *kadm.Client) (kadm.TopicDetails, error) {
	var lastErr error
	for {
		topics, err := adm.ListTopics(ctx, p.Topic)
		if err == nil {
			return topics, nil
		}
		if isAuthError(err) {
			return nil, fmt.Errorf("kafka %s: authentication failed (check %s in --kafka-secret-dir): %v", p.brokers(), "username/password", err)
		}
		if ctx.Err() != nil {
			// The last error is the deadline's own; the one before says why.
			if lastErr == nil {
				lastErr = err
			}
			return nil, fmt.Errorf("kafka %s: unreachable for %v: %v", p.brokers(), p.Timeout, lastErr)
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(lookupRetry):
		}
	}
}

// checkDetail reads the topic's metadata: missing (created when asked),
// not ours to write, or failing.
func (p *Producer) checkDetail(ctx context.Context, adm *kadm.Client, d kadm.TopicDetail) error {
	missing := d.Topic == "" || errors.Is(d.Err, kerr.UnknownTopicOrPartition)
	switch {
	case missing && p.CreatePartitions > 0:
		if _, err := adm.CreateTopic(ctx, p.CreatePartitions, 1, nil, p.Topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka %s: creating topic %q: %w", p.brokers(), p.Topic, err)
		}
	case missing && p.MissingHint != "":
		return fmt.Errorf("kafka %s: topic %q does not exist (%s)", p.brokers(), p.Topic, p.MissingHint)
	case missing:
		return fmt.Errorf("kafka %s: topic %q does not exist", p.brokers(), p.Topic)
	case errors.Is(d.Err, kerr.TopicAuthorizationFailed):
		return fmt.Errorf("kafka %s: not authorized for topic %q", p.brokers(), p.Topic)
	case d.Err != nil:
		return fmt.Errorf("kafka %s: topic %q: %w", p.brokers(), p.Topic, d.Err)
	}
	return nil
}

func isAuthError(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}
