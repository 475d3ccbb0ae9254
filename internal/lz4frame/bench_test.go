package lz4frame

import (
	"testing"
	"time"
)

// variants are the compressions the benchmarks compare.
var variants = []struct {
	name string
	f    func(dst, src []byte) ([]byte, error)
	cgo  bool
}{
	{"liblz4-64KiB", func(d, s []byte) ([]byte, error) { return appendWithBlock(d, s, 64<<10) }, true},
	{"liblz4-256KiB", func(d, s []byte) ([]byte, error) { return appendWithBlock(d, s, 256<<10) }, true},
	{"pierrec-256KiB", appendPure, false},
}

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
	for _, v := range variants {
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

// BenchmarkAppendInterleaved is BenchmarkAppend with the variants taking turns on each batch, so a
// machine whose load changes during the run (a shared one) weighs on all of them alike: the figures
// to compare, as ns per input byte of each.
func BenchmarkAppendInterleaved(b *testing.B) {
	if !UsesLiblz4 {
		b.Skip("built without cgo")
	}
	bs := batches(packetRecords(b, benchCapture(b), 100_000), 256<<10)
	dst := make([]byte, 0, 2*256<<10)
	spent := make([]time.Duration, len(variants))
	in := 0
	i := 0
	for b.Loop() {
		src := bs[i%len(bs)]
		i++
		in += len(src)
		for k, v := range variants {
			start := time.Now()
			if _, err := v.f(dst[:0], src); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
	}
	for k, v := range variants {
		b.ReportMetric(float64(spent[k].Nanoseconds())/float64(in), v.name+"-ns/B")
	}
}
