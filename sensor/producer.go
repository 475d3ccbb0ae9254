package sensor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/packetrecord"
)

// newProducer builds the client: idempotent (franz-go's default, kept on
// explicitly by not disabling it), acks from all in-sync replicas, short
// linger so batches form under load without delaying a quiet link, batch
// compression, bounded buffering, and flow partitioning.
func newProducer(c *Config) (*kgo.Client, error) {
	codec, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "capfleet-sensor-" + c.Node
	}
	base, err := c.Kafka.Options()
	if err != nil {
		return nil, err
	}
	opts := append(base,
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(codec, kgo.NoCompression()),
		kgo.MaxBufferedRecords(c.BufferPackets),
		kgo.MaxBufferedBytes(c.BufferMB<<20),
		kgo.RecordPartitioner(packetrecord.Partitioner()),
	)
	opts = append(opts, c.kafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// checkBroker proves, before capture starts, that the brokers answer, accept
// our credentials, and hold the topic. Each failure reads as one line.
func checkBroker(ctx context.Context, cl *kgo.Client, c *Config) error {
	ctx, cancel := context.WithTimeout(ctx, c.StartTimeout)
	defer cancel()
	brokers := strings.Join(c.Kafka.Brokers, ",")
	var lastErr error
	for {
		topics, err := kadm.NewClient(cl).ListTopics(ctx, c.Topic)
		if err == nil {
			t, ok := topics[c.Topic]
			switch {
			case !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition):
				return fmt.Errorf("kafka %s: topic %q does not exist", brokers, c.Topic)
			case errors.Is(t.Err, kerr.TopicAuthorizationFailed):
				return fmt.Errorf("kafka %s: not authorized for topic %q", brokers, c.Topic)
			case t.Err != nil:
				return fmt.Errorf("kafka %s: topic %q: %w", brokers, c.Topic, t.Err)
			}
			return nil
		}
		if isAuthError(err) {
			return fmt.Errorf("kafka %s: authentication failed (check %s in --kafka-secret-dir): %v", brokers, "username/password", err)
		}
		if ctx.Err() != nil {
			if lastErr == nil {
				lastErr = err
			}
			return fmt.Errorf("kafka %s: unreachable for %v: %v", brokers, c.StartTimeout, lastErr)
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func isAuthError(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}
