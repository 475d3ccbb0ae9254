package decodecmd

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

// BenchmarkDecodeCommand runs `pcap decode` with the parity fields in-process over the benchmark
// capture, output discarded: the reader, decoder and field formatting without process start-up.
func BenchmarkDecodeCommand(b *testing.B) {
	file := filepath.Join(testenv.Pcaps(b), benchProcessCapture)
	packets := countPackets(b, file)
	o := &decodeOptions{fields: strings.Join(parityFields, ","), output: "tsv"}
	b.ReportAllocs()
	for b.Loop() {
		if err := runDecode(io.Discard, io.Discard, file, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*packets), "ns/pkt")
}

// BenchmarkFlowsCommand runs `pcap flows` in-process over the benchmark capture.
func BenchmarkFlowsCommand(b *testing.B) {
	file := filepath.Join(testenv.Pcaps(b), benchProcessCapture)
	packets := countPackets(b, file)
	o := &flowsOptions{output: "tsv"}
	b.ReportAllocs()
	for b.Loop() {
		if err := runFlows(io.Discard, io.Discard, file, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*packets), "ns/pkt")
}
