package netflow_test

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/netflow/nfcmd"
	"capfleet.dev/capfleet/processor/decode"
)

// BenchmarkDecode decodes softflowd's v5, v9 and IPFIX export packets (templates learnt once), and
// reports flow records per second of one core.
func BenchmarkDecode(b *testing.B) {
	var pkts [][]byte
	err := nfcmd.EachExport(filepath.Join("testdata", "softflowd-ftp.pcap"), nil, func(_ time.Time, _ *decode.IPHeader, p []byte) {
		pkts = append(pkts, append([]byte(nil), p...))
	})
	if err != nil || len(pkts) == 0 {
		b.Fatal(err)
	}
	d := netflow.NewDecoder(netflow.Config{TemplateTimeout: -1})
	exp := netip.MustParseAddr("127.0.0.1")
	now := time.Now()
	emit := func(*netflow.Record) {}
	for _, p := range pkts {
		d.Decode(exp, p, now, emit)
	}
	start := d.Stats.Records
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Decode(exp, pkts[i%len(pkts)], now, emit)
	}
	b.ReportMetric(float64(d.Stats.Records-start)/b.Elapsed().Seconds(), "records/s")
}
