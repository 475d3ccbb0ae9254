package netflow_test

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/netflow/nfcmd"
	"capfleet.dev/capfleet/processor/decode"
)

// FuzzDecode feeds the decoder export packets from real captures (a Fritz!Box's IPFIX with enterprise
// and variable-length fields, a v9 stream caught mid-way, softflowd's v5, v9 and IPFIX) and what the
// fuzzer makes of them. Each input is decoded twice by one decoder, so the second pass meets the
// templates the first one learnt. Nothing may panic, and no record may claim more than the packet held.
func FuzzDecode(f *testing.F) {
	pcaps := testenv.Pcaps(f)
	for _, path := range []string{
		filepath.Join(pcaps, "ndpi", "netflow-fritz.pcap"),
		filepath.Join(pcaps, "ndpi", "netflowv9.pcap"),
		filepath.Join("testdata", "softflowd-ftp.pcap"),
	} {
		n := 0
		err := nfcmd.EachExport(path, nil, func(_ time.Time, _ *decode.IPHeader, payload []byte) {
			f.Add(append([]byte(nil), payload...))
			n++
		})
		if err != nil || n == 0 {
			f.Fatalf("%s: %d export packets, %v", path, n, err)
		}
	}
	exporter := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d := netflow.NewDecoder(netflow.Config{})
		now := time.Unix(1_700_000_000, 0)
		records := 0
		for range 2 {
			d.Decode(exporter, pkt, now, func(r *netflow.Record) {
				records++
				if r.Version != 5 && r.Version != 9 && r.Version != 10 {
					t.Fatalf("record of version %d", r.Version)
				}
			})
		}
		// The smallest flow record is one octet (a reduced-size field); v5's is 48.
		if records > 2*len(pkt) {
			t.Fatalf("%d records from %d bytes", records, len(pkt))
		}
	})
}
