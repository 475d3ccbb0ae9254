package workload

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// What newLz4Batches writes, franz-go's own decompressor (as a consumer's) reads back byte for byte,
// whatever the batch: empty, one block, several blocks, incompressible.
func TestLz4BatchesRoundTrip(t *testing.T) {
	c := newLz4Batches()
	d := kgo.DefaultDecompressor()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 256 << 10, 1<<20 + 7} {
		for _, random := range []bool{false, true} {
			src := make([]byte, n)
			for i := range src {
				if random {
					src[i] = byte(rng.Uint32())
				} else {
					src[i] = byte(i / 64)
				}
			}
			var dst bytes.Buffer
			out, codec := c.Compress(&dst, src)
			if codec != kgo.CodecLz4 {
				t.Fatalf("%d bytes: codec %v", n, codec)
			}
			back, err := d.Decompress(out, kgo.CodecLz4)
			if err != nil || !bytes.Equal(back, src) {
				t.Fatalf("%d bytes (random %v): round trip failed: %v", n, random, err)
			}
		}
	}
}
