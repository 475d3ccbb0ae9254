package flow_test

import (
	"capfleet.dev/capfleet/internal/testenv"

	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

type frame struct {
	data []byte
	pkt  pcapfile.Packet
}

func loadCapture(b testing.TB, rel string) []frame {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(filepath.Dir(dir), "shared", "pcaps", rel)
	r, err := pcapfile.Open(path)
	if err != nil {
		testenv.Missing(b, "%s", err)
	}
	defer r.Close()
	var out []frame
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, frame{data: p.Data, pkt: p})
	}
	return out
}

// BenchmarkDecodeAndAggregate runs a real capture through the decoder and a flow table per
// iteration, as `capfleet process` does per record; compare with processor/decode's
// BenchmarkDecode for the table's share.
func BenchmarkDecodeAndAggregate(b *testing.B) {
	frames := loadCapture(b, "zeek/echo-connections.pcap")
	d := decode.NewDecoder()
	var p decode.Packet
	flows := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t := flow.New(flow.Config{OnEnd: func(*flow.Flow, flow.EndReason) { flows++ }})
		for i := range frames {
			f := &frames[i]
			d.Decode(f.data, f.pkt.LinkType, f.pkt.Timestamp, f.pkt.Length, &p)
			t.Add(&p)
		}
		t.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/pkt")
	b.ReportMetric(float64(flows)/float64(b.N), "flows/op")
}
