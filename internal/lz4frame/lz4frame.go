// Package lz4frame writes LZ4 frames as Kafka's lz4 codec carries a record batch's records: one frame
// a batch, independent blocks, no block or content checksums (the batch has its own CRC-32C, which the
// broker checks) and no content size.
//
// With cgo it compresses with the system's liblz4, one LZ4F_compressFrame call a batch: on the
// sensor's small packet records it costs well under half the CPU of github.com/pierrec/lz4/v4 (the
// pure-Go lz4 franz-go uses) for the same ratio (BenchmarkAppend). Writing the frame in Go around
// LZ4_compress_default per block measured no faster, so the library writes the whole frame. Without
// cgo it falls back to pierrec/lz4 with the same settings, so the package builds with CGO_ENABLED=0.
package lz4frame

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BlockSize is the frame's block maximum size. 256 KiB rather than 64 KiB: on 256 KiB batches of
// packet records liblz4 is as fast with either, within the noise of this shared machine (one quiet
// run had 256 KiB a tenth faster; interleaved runs under load put either ahead by a few percent:
// BenchmarkAppendInterleaved), with 256 KiB a slightly better ratio (2.378 against 2.373), and it
// keeps what readers (the broker validating each batch, consumers) already buffered for the pierrec
// path. liblz4 marks a frame of 64 KiB or less with 64 KiB blocks.
const BlockSize = 256 << 10

// Compressor is a kgo.Compressor that writes every batch as one lz4 frame (Append); give it to a
// client with kgo.WithCompressor beside kgo.ProducerBatchCompression(kgo.Lz4Compression()).
type Compressor struct{}

// Compress appends src's frame to dst's spare capacity, as franz-go's own snappy and zstd do: the
// client copies the result out before it puts dst back in its pool, so dst's length need not follow,
// and a pooled buffer grown once serves every later batch without allocating.
func (Compressor) Compress(dst *bytes.Buffer, src []byte, _ ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	dst.Reset()
	dst.Grow(bound(len(src)))
	out, err := Append(dst.AvailableBuffer(), src)
	if err != nil {
		return nil, kgo.CodecError
	}
	return out, kgo.CodecLz4
}

// grow returns dst with room for n more bytes, reallocating at most once.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	return append(dst[:len(dst):len(dst)], make([]byte, n)...)[:len(dst)]
}
