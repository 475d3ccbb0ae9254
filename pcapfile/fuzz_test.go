package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// sharedPcaps returns ../shared/pcaps beside the repository root, or "" when it is not there.
func sharedPcaps(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	pcaps := filepath.Join(dir, "..", "shared", "pcaps")
	if _, err := os.Stat(pcaps); err != nil {
		return ""
	}
	return pcaps
}

// FuzzReader feeds arbitrary bytes to the reader: it must never panic, never hand out a packet whose
// lengths disagree with its data or exceed MaxRecord, never grow past its stated bounds, always end, and
// end either cleanly or with a *FormatError at an offset it has reached.
//
// Seeds: the files in testdata/fuzz/FuzzReader (small captures from tcpdump's test suite, see
// testdata/README.md), synthetic files of every variant, and the small captures of
// ../shared/pcaps/tcpdump/ when that directory exists.
func FuzzReader(f *testing.F) {
	recs := []rec{{sec: 1, data: []byte{1, 2, 3}, orig: 3}, {sec: 2, data: bytes.Repeat([]byte{4}, 20), orig: 1500}}
	f.Add(pcapFile(binary.LittleEndian, magicMicro, 2, 4, 65535, 1, recs...))
	f.Add(pcapFile(binary.BigEndian, magicNano, 2, 4, 16, 101, recs...))
	f.Add(pcapFile(binary.LittleEndian, magicKuznetzov, 2, 2, 0, 1, recs...))
	ng := newNG(binary.BigEndian).shb(1, 0).idb(1, 64, 9, 0).idb(113, 0, 0x80|10, -5).
		epb(0, 1, []byte{1, 2}, 2).block(99, []byte{9}).epb(1, 2, []byte{3}, 3).spb([]byte{4, 4}, 9).opb(1, 3, nil, 0).
		shb(1, 0).idb(228, 0, -1, 0).epb(0, 4, []byte{5}, 5)
	f.Add(ng.b.Bytes())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(ng.b.Bytes())
	zw.Close()
	f.Add(z.Bytes())
	if dir := sharedPcaps(f); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "tcpdump", "*.pcap*"))
		for _, name := range files {
			if st, err := os.Stat(name); err == nil && st.Size() <= 2048 {
				if b, err := os.ReadFile(name); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewReader: %T %v", err, err)
			}
			return
		}
		defer r.Close()
		packets := 0
		for {
			p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("Next: %T %v", err, err)
				}
				if fe.Offset < 0 || fe.Offset > r.Offset() {
					t.Fatalf("error offset %d beyond the %d bytes read", fe.Offset, r.Offset())
				}
				if _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
				break
			}
			packets++
			if p.CaptureLength != len(p.Data) || cap(p.Data) != len(p.Data) || p.CaptureLength > MaxRecord || p.Length < 0 {
				t.Fatalf("packet %d: caplen %d, %d data bytes, len %d", packets, p.CaptureLength, len(p.Data), p.Length)
			}
			// Every packet record or block takes at least 12 bytes of (decompressed) input.
			if int64(packets)*12 > r.Offset() {
				t.Fatalf("%d packets from %d bytes", packets, r.Offset())
			}
		}
		if cap(r.buf) > maxBlock || len(r.pcapng.ifaces) > MaxInterfaces || len(r.linkTypes) > 1<<16 {
			t.Fatalf("bounds exceeded: buffer %d, %d interfaces, %d link types", cap(r.buf), len(r.pcapng.ifaces), len(r.linkTypes))
		}
	})
}
