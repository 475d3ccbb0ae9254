package sensor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/workload"
)

// newProducer builds the checked client: short linger so batches form under
// load without delaying a quiet link, batch compression, and bounded
// buffering, since Kafka must never stall capture. It waits up to
// --kafka-start-timeout for a broker that is still starting.
func newProducer(ctx context.Context, c *Config) (*kgo.Client, error) {
	codec, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "capfleet-sensor-" + c.Node
	}
	opts := append([]kgo.Opt{
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchCompression(codec, kgo.NoCompression()),
		kgo.MaxBufferedRecords(c.BufferPackets),
		kgo.MaxBufferedBytes(c.BufferMB << 20),
	}, c.kafkaOpts...)
	return workload.NewPacketsProducer(ctx, workload.Producer{
		Kafka: c.Kafka, Topic: c.Topic, Timeout: c.StartTimeout, WaitForKafka: true, Options: opts,
	})
}
