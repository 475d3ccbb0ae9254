package packetjson_test

import (
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/packetjson"
)

type frame struct {
	data     []byte
	linkType decode.LinkType
	ts       time.Time
	length   int
}

func readFrames(t testing.TB, path string, max int) []frame {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil
	}
	defer r.Close()
	var out []frame
	for max <= 0 || len(out) < max {
		p, err := r.Next()
		if errors.Is(err, io.EOF) || err != nil {
			break
		}
		out = append(out, frame{append([]byte(nil), p.Data...), p.LinkType, p.Timestamp, p.Length})
	}
	return out
}

// malformed are the captures of tcpdump's test suite, most of them deliberately broken (cut
// headers, bogus lengths, out-of-bounds reads found by fuzzers), and the repository's own.
func malformed(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(testenv.Pcaps(t), "tcpdump", "*"))
	own, _ := filepath.Glob(filepath.Join(testenv.Root(t), "testdata", "*.pcap"))
	return append(files, own...)
}

// checkRecord decodes frame, writes its record and checks it is one JSON object whose keys are
// record fields, in order, each once.
func checkRecord(t *testing.T, d *decode.Decoder, p *decode.Packet, f frame) {
	d.Decode(f.data, f.linkType, f.ts, f.length, p)
	out := packetjson.Append(nil, 7, p, f.data)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("record is not JSON: %v: %s", err, out)
	}
	names := packetjson.Fields()
	for k := range m {
		if !slices.Contains(names, k) {
			t.Fatalf("record has key %q, not a record field: %s", k, out)
		}
	}
	if m["frame.number"] != float64(7) {
		t.Fatalf("frame.number %v, want 7: %s", m["frame.number"], out)
	}
}

// TestMalformedCapturesGiveJSON: every packet of the malformed corpus gives a JSON record.
func TestMalformedCapturesGiveJSON(t *testing.T) {
	d := decode.NewDecoder()
	var p decode.Packet
	n := 0
	for _, path := range malformed(t) {
		for _, f := range readFrames(t, path, 0) {
			checkRecord(t, d, &p, f)
			n++
		}
	}
	if n < 1000 {
		t.Fatalf("only %d packets read: corpus incomplete?", n)
	}
}

// FuzzRecord feeds arbitrary frames under any link type to the decoder and the record writer:
// no crash, and always one JSON object. Seeds are the first packets of the malformed corpus.
func FuzzRecord(f *testing.F) {
	for _, path := range malformed(f) {
		for _, fr := range readFrames(f, path, 3) {
			f.Add(fr.data, uint32(fr.linkType))
		}
	}
	f.Add([]byte{}, uint32(1))
	d := decode.NewDecoder()
	var p decode.Packet
	f.Fuzz(func(t *testing.T, data []byte, linkType uint32) {
		checkRecord(t, d, &p, frame{data, decode.LinkType(linkType), time.Unix(1, 0), len(data)})
		// The frame cut short after decoding must not make the writer read past it either.
		if len(data) > 0 {
			d.Decode(data, decode.LinkType(linkType), time.Unix(1, 0), len(data), &p)
			packetjson.Append(nil, 1, &p, data[:len(data)/2])
		}
	})
}

// benchFrames are the packets of a real capture with TCP, UDP, DNS and ICMP over IPv4 and IPv6.
func benchFrames(b testing.TB) []frame {
	fr := readFrames(b, filepath.Join(testenv.Pcaps(b), "zeek", "echo-connections.pcap"), 0)
	fr = append(fr, readFrames(b, filepath.Join(testenv.Pcaps(b), "zeek", "wikipedia.pcap"), 0)...)
	if len(fr) == 0 {
		b.Fatal("no packets")
	}
	return fr
}

// BenchmarkAppend writes the record of every packet of the bench captures, decoded beforehand
// (decoding has its own benchmark): ns/pkt and B/pkt of record, allocs/op must be 0.
func BenchmarkAppend(b *testing.B) {
	frames := benchFrames(b)
	d := decode.NewDecoder()
	pkts := make([]decode.Packet, len(frames))
	for i, f := range frames {
		d.Decode(f.data, f.linkType, f.ts, f.length, &pkts[i])
	}
	buf := make([]byte, 0, 4096)
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bytes = 0
		for i := range frames {
			buf = packetjson.Append(buf[:0], i+1, &pkts[i], frames[i].data)
			bytes += len(buf)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/pkt")
	b.ReportMetric(float64(bytes)/float64(len(frames)), "B/record")
}

// TestAppendDoesNotAllocate holds the writer to zero allocations per record into a reused buffer.
func TestAppendDoesNotAllocate(t *testing.T) {
	frames := benchFrames(t)
	d := decode.NewDecoder()
	var p decode.Packet
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(3, func() {
		for i := range frames {
			d.Decode(frames[i].data, frames[i].linkType, frames[i].ts, frames[i].length, &p)
			buf = packetjson.Append(buf[:0], i+1, &p, frames[i].data)
		}
	})
	if allocs != 0 {
		t.Errorf("writing %d records allocated %.0f times", len(frames), allocs)
	}
}
