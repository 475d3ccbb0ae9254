package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// record is where one unit of a file (header, packet record or block) lies.
type record struct {
	start, end int
	packet     bool
}

func pcapRecords(file []byte, recs []rec) []record {
	out := []record{{0, pcapHeaderLen, false}}
	off := pcapHeaderLen
	for _, r := range recs {
		out = append(out, record{off, off + 16 + len(r.data), true})
		off += 16 + len(r.data)
	}
	return out
}

// checkEveryCut reads every prefix of file: each must yield exactly the packets whose records end inside
// it, then a clean end if the cut falls between records, or else a truncation error naming the offset
// where the cut record starts.
func checkEveryCut(t *testing.T, file []byte, recs []record) {
	t.Helper()
	for n := 0; n <= len(file); n++ {
		wantPackets, boundary, cutStart := 0, false, -1
		for _, r := range recs {
			switch {
			case r.end <= n:
				if r.packet {
					wantPackets++
				}
				boundary = boundary || r.end == n
			case r.start < n:
				cutStart = r.start
			}
		}
		got, _, err := readAll(t, file[:n])
		if n < recs[0].end {
			// Inside the file header: NewReader refuses it.
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != 0 {
				t.Fatalf("cut at %d: want a header error at 0, got %v", n, err)
			}
			continue
		}
		if len(got) != wantPackets {
			t.Fatalf("cut at %d: %d packets, want %d (err %v)", n, len(got), wantPackets, err)
		}
		if boundary || n == len(file) {
			if err != nil {
				t.Fatalf("cut at %d, between records: %v", n, err)
			}
			continue
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || fe.Offset != int64(cutStart) {
			t.Fatalf("cut at %d: want truncation at %d, got %v", n, cutStart, err)
		}
	}
}

func TestTruncatedPcapAtEveryOffset(t *testing.T) {
	recs := []rec{
		{sec: 1, data: bytes.Repeat([]byte{1}, 40), orig: 40},
		{sec: 2, data: nil, orig: 0},
		{sec: 3, data: bytes.Repeat([]byte{3}, 7), orig: 1500},
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			file := pcapFile(order, magicNano, 2, 4, 65535, 1, recs...)
			checkEveryCut(t, file, pcapRecords(file, recs))
		})
	}
}

func TestTruncatedPcapngAtEveryOffset(t *testing.T) {
	for _, order := range []endian{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			w := newNG(order).shb(1, 0).idb(1, 65535, 9, 0).epb(0, 1, []byte{1, 2, 3}, 3).
				block(77, []byte("skipped")).idb(113, 64, -1, 0).epb(1, 2, bytes.Repeat([]byte{4}, 64), 99).
				spb([]byte{5, 5, 5, 5, 5}, 5).shb(1, 0).idb(1, 0, -1, 0).opb(0, 3, []byte{6}, 1)
			var recs []record
			for _, b := range w.blocks {
				recs = append(recs, record(b))
			}
			checkEveryCut(t, w.b.Bytes(), recs)
		})
	}
}

func TestGzip(t *testing.T) {
	plain := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0).
		epb(0, 1, []byte{1}, 1).epb(0, 2, []byte{2}, 2).b.Bytes()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	got, r, err := readAll(t, z.Bytes())
	if err != nil || len(got) != 2 || r.Format() != "pcapng (gzip)" {
		t.Fatalf("%d packets, %v", len(got), err)
	}
	// Cut in the compressed stream: every packet inflated before the cut comes out, then an error.
	for _, n := range []int{z.Len() - 1, z.Len() - 9, z.Len() / 2} {
		got, _, err := readAll(t, z.Bytes()[:n])
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("compressed stream cut at %d: %d packets, error %v", n, len(got), err)
		}
	}
}

func TestNotACapture(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("GET / HTTP/1.1\r\n"), {0x1f, 0x8b, 0, 0}, make([]byte, 100)} {
		_, err := NewReader(bytes.NewReader(in))
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%q: %v", in, err)
		}
	}
	_, err := NewReader(bytes.NewReader(pcapFile(binary.LittleEndian, magicMicro, 3, 0, 0, 1)))
	if err == nil || fmt.Sprint(err) != "offset 4: unsupported pcap version 3.0" {
		t.Errorf("version 3.0: %v", err)
	}
}
