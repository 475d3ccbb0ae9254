package sensor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/packetrecord"
)

// publisher is the producer and the pool its records come from: the pool is the buffer's bound
// (--buffer-packets, --buffer-mb), which the rings wait on, and franz-go's own bounds sit just above
// it, so they never shed first.
type publisher struct {
	cl   *kgo.Client
	pool *packetrecord.Pool
}

// produced is the promise of every record: it counts the outcome on the record's interface (its
// tag) and hands the record's memory back to the pool.
func (p *publisher) produced(r *kgo.Record, err error) {
	size := len(r.Value)
	c, _ := packetrecord.Release(r).(*ifaceCounters)
	if c != nil {
		c.count(size, err)
	}
}

// newPublisher builds the checked client, tuned as workload.PacketsProducerTuning says with the
// --compression codec, and a pool for the records. It waits up to --kafka-start-timeout
// for a broker that is still starting.
func newPublisher(ctx context.Context, c *Config, rings int) (*publisher, error) {
	codec, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "capfleet-sensor-" + c.Node
	}
	// Each ring may overshoot the pool's record bound by one (it checks, then takes), and franz-go
	// counts the header key besides the pool's bytes.
	opts := append(workload.PacketsProducerTuning(codec),
		kgo.MaxBufferedRecords(c.BufferPackets+rings),
		kgo.MaxBufferedBytes(2*c.BufferMB<<20))
	opts = append(opts, c.kafkaOpts...)
	cl, err := workload.NewPacketsProducer(ctx, workload.Producer{
		Kafka: c.Kafka, Topic: c.Topic, Timeout: c.StartTimeout, WaitForKafka: true, Options: opts,
	})
	if err != nil {
		return nil, err
	}
	return &publisher{cl: cl, pool: packetrecord.NewPool(c.BufferMB<<20, c.BufferPackets)}, nil
}
