package lz4frame

import (
	"testing"
	"time"
)

// BenchmarkAppend compresses the records sections of 256 KiB batches of the sensor's packet records
// (benchCapture; 256 KiB is about what a loaded sensor's linger fills) with liblz4 at 64 and 256 KiB
// blocks and with pierrec/lz4 as the pierrec path had it (256 KiB blocks), and reports ns per input
// byte and per record, and the ratio (input over output bytes).
func BenchmarkAppend(b *testing.B) {
	recs := packetRecords(b, benchCapture(b), 100_000)
	bs := batches(recs, 256<<10)
	total := 0
	for _, x := range bs {
		total += len(x)
	}
	perBatch := float64(len(recs)) / float64(len(bs))
	for _, v := range []struct {
		name string
		f    func(dst, src []byte) ([]byte, error)
		cgo  bool
	}{
		{"liblz4-64KiB", func(d, s []byte) ([]byte, error) { return appendWithBlock(d, s, 64<<10) }, true},
		{"liblz4-256KiB", func(d, s []byte) ([]byte, error) { return appendWithBlock(d, s, 256<<10) }, true},
		{"pierrec-256KiB", appendPure, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			if v.cgo && !UsesLiblz4 {
				b.Skip("built without cgo")
			}
			dst := make([]byte, 0, 2*256<<10)
			in, out := 0, 0
			b.ReportAllocs()
			b.SetBytes(int64(total / len(bs)))
			i := 0
			start := time.Now()
			for b.Loop() {
				src := bs[i%len(bs)]
				i++
				f, err := v.f(dst[:0], src)
				if err != nil {
					b.Fatal(err)
				}
				in += len(src)
				out += len(f)
			}
			el := float64(time.Since(start).Nanoseconds())
			b.ReportMetric(el/float64(in), "ns/B")
			b.ReportMetric(el/(float64(i)*perBatch), "ns/record")
			b.ReportMetric(float64(in)/float64(out), "ratio")
		})
	}
}
