package sensor

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/batchproducer"
	"capfleet.dev/capfleet/internal/workload"
)

// publisher is the client and the batch producer on it: each ring's feeder writes its packets'
// records into batches of its own (batchproducer.Writer), bounded by --buffer-packets and
// --buffer-mb, which the rings wait on.
type publisher struct {
	cl   *kgo.Client
	prod *batchproducer.Producer
}

// sensorLinger is how long a ring's open batch waits for more records. Longer than franz-go's
// PacketsLinger: under load the sensor goes idle and wakes once a batch goes and once it is answered,
// and on the benchmark's VM every wake-up costs context switches (the Go runtime's monitor runs every
// 20 µs for a while after an idle process makes a system call). At 300,000 packets/s into 3
// partitions, whole-process CPU a packet was 747 ns (3 runs averaged) with 20 ms, 668 with 50 ms and
// 650 with 100 ms. A quiet link's packets reach Kafka within this plus the ring's block timeout.
const sensorLinger = 100 * time.Millisecond

// batchBytes bounds a batch's records before compression: with the header, the 1 MiB a topic
// takes by default (max.message.bytes 1048588), even when a batch goes uncompressed.
const batchBytes = 1<<20 - 64

// produced counts the outcome of a batch on the interface whose ring wrote it (its tag).
func produced(tag any, records, frameBytes int, err error) {
	if c, ok := tag.(*ifaceCounters); ok {
		c.countBatch(records, frameBytes, err)
	}
}

// newPublisher builds the checked client and the batch producer on it: batches of at most
// batchBytes, sensorLinger and the --compression codec (workload.PacketsCompressor). It waits up to
// --kafka-start-timeout for a broker that is still starting.
func newPublisher(ctx context.Context, c *Config, log *slog.Logger) (*publisher, error) {
	codec, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	compressor, err := workload.PacketsCompressor(codec)
	if err != nil {
		return nil, err
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "capfleet-sensor-" + c.Node
	}
	cl, err := workload.NewPacketsProducer(ctx, workload.Producer{
		Kafka: c.Kafka, Topic: c.Topic, Timeout: c.StartTimeout, WaitForKafka: true, Options: c.kafkaOpts,
	})
	if err != nil {
		return nil, err
	}
	prod, err := batchproducer.New(ctx, cl, batchproducer.Config{
		Topic: c.Topic, Compressor: compressor, Linger: sensorLinger, BatchBytes: batchBytes,
		BufferBytes: c.BufferMB << 20, BufferRecords: c.BufferPackets, Done: produced, Log: log,
	})
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &publisher{cl: cl, prod: prod}, nil
}

// close sends what is buffered for up to timeout, fails the rest, and closes the client.
func (p *publisher) close(timeout time.Duration) error {
	err := p.prod.Close(timeout)
	p.cl.Close()
	return err
}
