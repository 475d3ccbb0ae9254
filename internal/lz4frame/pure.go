package lz4frame

import (
	"sync"

	"github.com/pierrec/lz4/v4"
)

// pureWriters hold pierrec/lz4 writers set up for Kafka frames; a writer keeps buffers of its block
// size, so they are reused rather than made per batch.
var pureWriters = sync.Pool{New: func() any {
	w := &pureWriter{}
	w.lz = lz4.NewWriter(&w.out)
	if err := w.lz.Apply(lz4.BlockSizeOption(pureBlockSize), lz4.ChecksumOption(false)); err != nil {
		panic(err)
	}
	return w
}}

// pureBlockSize is BlockSize as pierrec names it.
const pureBlockSize = lz4.Block256Kb

type pureWriter struct {
	lz  *lz4.Writer
	out appender
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// appendPure is Append with pierrec/lz4: the !cgo build's Append, and the baseline the tests and
// benchmarks compare liblz4 against.
func appendPure(dst, src []byte) ([]byte, error) {
	w := pureWriters.Get().(*pureWriter)
	defer pureWriters.Put(w)
	w.out.b = grow(dst, pureBound(len(src)))
	w.lz.Reset(&w.out)
	_, err := w.lz.Write(src)
	if err == nil {
		err = w.lz.Close()
	}
	out := w.out.b
	w.out.b = nil
	if err != nil {
		return dst, err
	}
	return out, nil
}

// pureBound is the most appendPure writes for n bytes: the header (7), per block a 4-byte size and
// the block stored raw, and the end mark (4).
func pureBound(n int) int { return 7 + n + 4*(n/int(pureBlockSize)+1) + 4 }
