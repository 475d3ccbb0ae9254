package workload

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/lz4frame"
)

// newLz4Batches is the compressor of lz4 produce batches: liblz4 through cgo (lz4frame) instead of
// franz-go's pure-Go pierrec/lz4, since on the sensor's small packet records it spends well under
// half the CPU a record for the same ratio (lz4frame's BenchmarkAppend). Its frames keep what the
// pierrec writer here had: 256 KiB blocks instead of lz4's default 4 MiB, since a batch is at most
// 1 MiB and every reader (the broker validating the batch, a consumer) keeps buffers of the block
// size; and no frame content checksum, since a record batch carries its own CRC-32C, which the broker
// checks. Kafka, librdkafka and franz-go read such frames as any other. A build without cgo gets
// pierrec/lz4 with the same settings.
func newLz4Batches() kgo.Compressor { return lz4frame.Compressor{} }

// PacketsCompressor is the compressor of PacketsProducerTuning for codec, for a producer that
// compresses its own batches (nil: none).
func PacketsCompressor(codec kgo.CompressionCodec) (kgo.Compressor, error) {
	switch codec {
	case kgo.NoCompression():
		return nil, nil
	case kgo.Lz4Compression():
		return newLz4Batches(), nil
	}
	return kgo.DefaultCompressor(codec)
}
