package lz4frame

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
)

// packetRecords reads up to max packets of the capture at path as the sensor's records
// (packetrecord.Encode).
func packetRecords(t testing.TB, path string, max int) []*kgo.Record {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var recs []*kgo.Record
	for len(recs) < max {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		recs = append(recs, packetrecord.Encode(packetrecord.Meta{
			Timestamp: p.Timestamp, Node: "node-a", Interface: "eth0", LinkType: p.LinkType, OrigLen: p.Length,
		}, p.Data))
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no packets", path)
	}
	return recs
}

// batches lays recs out as the records sections of record batches of up to size bytes, the bytes a
// producer hands its compressor: each record as franz-go writes it (kmsg.Record: length, attributes,
// timestamp and offset deltas, key, value, headers), offsets counting from 0 in each batch, timestamps
// a few milliseconds apart.
func batches(recs []*kgo.Record, size int) [][]byte {
	var out [][]byte
	var cur []byte
	n := 0
	for i, r := range recs {
		k := kmsg.Record{
			TimestampDelta64: int64(i % 20),
			OffsetDelta:      int32(n),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			k.Headers = append(k.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		body := k.AppendTo(nil)[1:] // without its length, a varint 0 of one byte
		k.Length = int32(len(body))
		rec := k.AppendTo(nil)
		if len(cur)+len(rec) > size && len(cur) > 0 {
			out = append(out, cur)
			cur, n = nil, 0
			k.OffsetDelta = 0
			rec = k.AppendTo(nil)
		}
		cur = append(cur, rec...)
		n++
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// benchCapture is the capture of the benchmark's small packets (make bench's input) when this
// checkout has it, else a real capture of application traffic from the shared corpus.
func benchCapture(t testing.TB) string {
	t.Helper()
	p := filepath.Join(testenv.Root(t), ".cache", "bench", "inputs", "small-ca16ec33a508758d.pcap")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return sharedCapture(t)
}

// sharedCapture is a real capture of application traffic (HTTP, TLS, DNS) from the shared corpus.
func sharedCapture(t testing.TB) string {
	t.Helper()
	p := filepath.Join(testenv.Pcaps(t), "ndpi", "1kxun.pcap")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "%v", err)
	}
	return p
}
