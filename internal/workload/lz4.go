package workload

import (
	"bytes"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Batches compresses produce batches as franz-go's own lz4 does, with two settings of its own:
// 256 KiB frame blocks instead of lz4's default 4 MiB, since a batch is at most 1 MiB and each
// writer keeps buffers of its block size (franz-go's pool held ~12 MiB of them, most of a sensor's
// heap under load); and no frame content checksum, since a record batch carries its own CRC-32C,
// which the broker checks. Kafka, librdkafka and franz-go read such frames as any other.
type lz4Batches struct{ writers sync.Pool }

func newLz4Batches() *lz4Batches {
	c := &lz4Batches{}
	c.writers.New = func() any {
		w := lz4.NewWriter(nil)
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(false))
		return w
	}
	return c
}

func (c *lz4Batches) Compress(dst *bytes.Buffer, src []byte, _ ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	w := c.writers.Get().(*lz4.Writer)
	defer c.writers.Put(w)
	w.Reset(dst)
	if _, err := w.Write(src); err != nil {
		return nil, kgo.CodecError
	}
	if err := w.Close(); err != nil {
		return nil, kgo.CodecError
	}
	return dst.Bytes(), kgo.CodecLz4
}

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
