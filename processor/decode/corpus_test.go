package decode_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"

	"capfleet.dev/capfleet/internal/testenv"
)

// frame is one captured packet kept in memory.
type frame struct {
	data     []byte
	linkType uint32
	pkt      pcapfile.Packet
}

// readFrames reads up to max packets of a capture (all when max <= 0), stopping quietly at a
// damaged record: the reader's own tests cover those.
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
		d := append([]byte(nil), p.Data...)
		p.Data = d
		out = append(out, frame{data: d, linkType: uint32(p.LinkType), pkt: p})
	}
	return out
}

// TestTcpdumpCorpusDecodes runs every packet of tcpdump's test captures (35 link types, many
// deliberately malformed) through the decoder: none may panic, every one gets a reason, and the
// field formatters accept whatever came out.
func TestTcpdumpCorpusDecodes(t *testing.T) {
	dir := filepath.Join(testenv.Pcaps(t), "tcpdump")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := decode.LookupFields(decode.FieldNames())
	if err != nil {
		t.Fatal(err)
	}
	d := decode.NewDecoder()
	var p decode.Packet
	var buf []byte
	files := 0
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		for i, f := range readFrames(t, path, 0) {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s packet %d: panic: %v", e.Name(), i+1, r)
					}
				}()
				r := d.Decode(f.data, decode.LinkType(f.linkType), f.pkt.Timestamp, f.pkt.Length, &p)
				if r >= decode.NumReasons || p.Reason != r {
					t.Errorf("%s packet %d: reason %d out of range", e.Name(), i+1, r)
				}
				for _, fl := range fields {
					buf, _ = fl.Append(buf[:0], i+1, &p)
				}
			}()
		}
		files++
	}
	s := d.Stats
	t.Logf("%d files, %d packets: %v by reason %v, %d with fragments", files, s.Packets, decode.ReasonNames(), s.ByReason, s.Fragments)
	if files < 800 || s.Packets < 5000 {
		t.Fatalf("only %d files and %d packets read from %s", files, s.Packets, dir)
	}
	var sum uint64
	for _, n := range s.ByReason {
		sum += n
	}
	if sum != s.Packets {
		t.Errorf("reasons add up to %d for %d packets", sum, s.Packets)
	}
	// Half of tcpdump's packets are well-formed IP (most of the rest are other protocols): a
	// decoder failing broadly would show here.
	if s.ByReason[decode.OK]*5 < s.Packets*2 {
		t.Errorf("only %d of %d packets decoded", s.ByReason[decode.OK], s.Packets)
	}
}
