package pcapfile

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchFile loads a capture of the shared corpus; CI must have it, elsewhere its absence skips.
func benchFile(b *testing.B, rel string) []byte {
	dir := sharedPcaps(b)
	if dir == "" {
		testenv.Missing(b, "../shared/pcaps is missing beside the repository root")
	}
	data, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// benchRead reads the whole capture per iteration with Next and reports throughput and the cost per packet.
func benchRead(b *testing.B, data []byte, open func() (*Reader, error)) {
	benchReadWith(b, data, open, func(r *Reader) error { _, err := r.Next(); return err })
}

func benchReadWith(b *testing.B, data []byte, open func() (*Reader, error), next func(*Reader) error) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	packets := 0
	for b.Loop() {
		r, err := open()
		if err != nil {
			b.Fatal(err)
		}
		for {
			err := next(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			packets++
		}
		r.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
}

// zeek/echo-connections.pcap: 6.8 MB, 82582 mostly small packets, the corpus's largest file.
func BenchmarkReadPcap(b *testing.B) {
	data := benchFile(b, "zeek/echo-connections.pcap")
	benchRead(b, data, func() (*Reader, error) { return NewReader(bytes.NewReader(data)) })
}

// The same with NextRecord, which builds no time.Time and returns a smaller struct.
func BenchmarkReadPcapRecord(b *testing.B) {
	data := benchFile(b, "zeek/echo-connections.pcap")
	benchReadWith(b, data, func() (*Reader, error) { return NewReader(bytes.NewReader(data)) },
		func(r *Reader) error { _, err := r.NextRecord(); return err })
}

// zeek/irc-dcc-send.pcapng: 1.4 MB, 1184 packets, mostly full-size.
func BenchmarkReadPcapng(b *testing.B) {
	data := benchFile(b, "zeek/irc-dcc-send.pcapng")
	benchRead(b, data, func() (*Reader, error) { return NewReader(bytes.NewReader(data)) })
}

func BenchmarkReadPcapGzip(b *testing.B) {
	data := benchFile(b, "zeek/echo-connections.pcap")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	benchRead(b, data, func() (*Reader, error) { return NewReader(bytes.NewReader(z.Bytes())) })
}

// From the file system, as `capfleet pcap info` reads it.
func BenchmarkReadPcapFile(b *testing.B) {
	data := benchFile(b, "zeek/echo-connections.pcap")
	path := filepath.Join(sharedPcaps(b), "zeek/echo-connections.pcap")
	benchRead(b, data, func() (*Reader, error) { return Open(path) })
}
