package block

import (
	"errors"
	"testing"
)

// FuzzBlock feeds block bodies, real ones first, to the reader: it must return the packets or an error
// wrapping ErrCorrupt, never panic or read past the body. (Decompression is zstd's own, fuzzed by its
// authors; TestCorruptBodiesAreErrors checks that its failures surface as ErrCorrupt.)
func FuzzBlock(f *testing.F) {
	for _, path := range corpus(f) {
		blocks := build(readCapture(f, path), Limits{MaxBytes: 2 << 10})
		body, err := Decompress(nil, blocks[0].data, CodecZstd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Each(body, 1, func(p *Packet) error {
			if len(p.Data) > len(body) {
				t.Fatalf("frame of %d bytes from a body of %d", len(p.Data), len(body))
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v does not wrap ErrCorrupt", err)
		}
	})
}
