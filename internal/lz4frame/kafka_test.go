package lz4frame

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// The broker of hack/kafka.sh takes batches compressed by Compressor and gives back the same
// records byte for byte: on a topic that keeps the producer's codec (the broker decompresses each
// batch to validate it; the consumer decodes the lz4 frames with franz-go), and on one that
// recompresses with zstd, so the records the consumer reads are what the broker's own lz4 reader
// made of the frames.
func TestBrokerAcceptsFrames(t *testing.T) {
	cfg := kafkatest.Plain(t)
	want := packetRecords(t, sharedCapture(t), 20_000)
	for _, tc := range []struct {
		name, topicCodec string
		stored           kgo.CompressionCodecType
	}{
		{"producer", "producer", kgo.CodecLz4},
		{"zstd", "zstd", kgo.CodecZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			topic := kafkatest.NewTopic(t, cfg, 1)
			if tc.topicCodec != "producer" {
				adm, err := cfg.NewClient()
				if err != nil {
					t.Fatal(err)
				}
				v := tc.topicCodec
				_, err = kadm.NewClient(adm).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "compression.type", Value: &v}}, topic)
				adm.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			prod, err := cfg.NewClient(kgo.DefaultProduceTopic(topic),
				kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.WithCompressor(Compressor{}),
				kgo.ProducerLinger(50*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			for _, r := range want {
				r := &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}
				prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			if err := prod.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if t.Failed() {
				return
			}

			cons, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			n := 0
			for n < len(want) {
				fs := cons.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("%d of %d records consumed: %v", n, len(want), err)
				}
				for _, fe := range fs.Errors() {
					t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
				}
				for _, got := range fs.Records() {
					if n >= len(want) {
						t.Fatalf("more than the %d records produced", len(want))
					}
					w := want[n]
					if c := got.Attrs.CompressionType(); c != uint8(tc.stored) {
						t.Fatalf("record %d stored with codec %d, want %d", n, c, tc.stored)
					}
					if !bytes.Equal(got.Key, w.Key) || !bytes.Equal(got.Value, w.Value) || len(got.Headers) != len(w.Headers) ||
						got.Headers[0].Key != w.Headers[0].Key || !bytes.Equal(got.Headers[0].Value, w.Headers[0].Value) {
						t.Fatalf("record %d differs from the one produced", n)
					}
					n++
				}
			}
			t.Logf("%d records back as produced", n)
		})
	}
}
