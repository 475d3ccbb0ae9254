package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// pcapFile builds a classic pcap file: magic chooses precision and Kuznetzov variant, order the byte order.
func pcapFile(order binary.ByteOrder, magic uint32, major, minor uint16, snaplen, linktype uint32, recs ...rec) []byte {
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, order, v) }
	w(magic)
	w(major)
	w(minor)
	w(int32(0))
	w(uint32(0))
	w(snaplen)
	w(linktype)
	for _, r := range recs {
		w(r.sec)
		w(r.frac)
		w(r.caplen())
		w(r.origlen())
		if magic == magicKuznetzov {
			w(make([]byte, 8))
		}
		b.Write(r.data)
	}
	return b.Bytes()
}

type rec struct {
	sec, frac uint32
	data      []byte
	orig      uint32
	swapLens  bool // write len in the caplen slot and vice versa
}

func (r rec) caplen() uint32 {
	if r.swapLens {
		return r.orig
	}
	return uint32(len(r.data))
}

func (r rec) origlen() uint32 {
	if r.swapLens {
		return uint32(len(r.data))
	}
	return r.orig
}

func readAll(t *testing.T, b []byte) ([]Packet, *Reader, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var out []Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		p.Data = bytes.Clone(p.Data)
		out = append(out, p)
	}
}

func TestPcapHeaderVariants(t *testing.T) {
	recs := []rec{
		{sec: 1700000000, frac: 123456, data: []byte{1, 2, 3, 4}, orig: 60},
		{sec: 1700000001, frac: 999999, data: bytes.Repeat([]byte{9}, 100), orig: 100},
	}
	for _, tc := range []struct {
		name   string
		order  binary.ByteOrder
		magic  uint32
		minor  uint16
		format string
		scale  int64
	}{
		{"micro-le", binary.LittleEndian, magicMicro, 4, "pcap", 1000},
		{"micro-be", binary.BigEndian, magicMicro, 4, "pcap", 1000},
		{"nano-le", binary.LittleEndian, magicNano, 4, "pcap-ns", 1},
		{"nano-be", binary.BigEndian, magicNano, 4, "pcap-ns", 1},
		{"minor1", binary.LittleEndian, magicMicro, 1, "pcap", 1000},
		{"kuznetzov", binary.LittleEndian, magicKuznetzov, 4, "pcap", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := recs
			if tc.minor < 3 {
				// Before 2.3 the two length fields were in the other order.
				rs = nil
				for _, r := range recs {
					r.swapLens = true
					rs = append(rs, r)
				}
			}
			got, r, err := readAll(t, pcapFile(tc.order, tc.magic, 2, tc.minor, 65535, 1, rs...))
			if err != nil {
				t.Fatal(err)
			}
			if r.Format() != tc.format {
				t.Errorf("format %q, want %q", r.Format(), tc.format)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d packets, want %d", len(got), len(recs))
			}
			for i, want := range recs {
				p := got[i]
				wantTS := time.Unix(int64(want.sec), int64(want.frac)*tc.scale)
				if !p.Timestamp.Equal(wantTS) || p.CaptureLength != len(want.data) || p.Length != int(want.orig) ||
					!bytes.Equal(p.Data, want.data) || p.LinkType != 1 {
					t.Errorf("packet %d: %+v", i, p)
				}
			}
		})
	}
}

func TestPcapCaplenBeyondSnaplen(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 1500)
	got, _, err := readAll(t, pcapFile(binary.LittleEndian, magicMicro, 2, 4, 96, 1, rec{data: big, orig: 1500}))
	if err != nil || len(got) != 1 || got[0].CaptureLength != 1500 || !bytes.Equal(got[0].Data, big) {
		t.Fatalf("got %d packets, err %v", len(got), err)
	}
}

func TestPcapAbsurdLength(t *testing.T) {
	f := pcapFile(binary.LittleEndian, magicMicro, 2, 4, 65535, 1, rec{data: []byte{1}, orig: 1})
	// Second record header claims 3 GB of data.
	f = binary.LittleEndian.AppendUint32(f, 0)
	f = binary.LittleEndian.AppendUint32(f, 0)
	f = binary.LittleEndian.AppendUint32(f, 3<<30)
	f = binary.LittleEndian.AppendUint32(f, 3<<30)
	got, _, err := readAll(t, f)
	var fe *FormatError
	if len(got) != 1 || !errors.As(err, &fe) || fe.Offset != 24+16+1 {
		t.Fatalf("got %d packets, err %v", len(got), err)
	}
}

// Records are cut from a window of the read buffer; records larger than the buffer, records straddling
// its refills, and input that trickles in a few bytes per read must all come out whole and in order,
// through Next and NextRecord alike.
func TestPcapRecordsAcrossBufferRefills(t *testing.T) {
	var recs []rec
	for i := range 3000 {
		size := 40 + i*37%1500
		switch i % 500 {
		case 7:
			size = readBufferSize + 1 // larger than the read buffer
		case 8:
			size = MaxRecord
		}
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size/2+1)[:size]
		recs = append(recs, rec{sec: uint32(1_700_000_000 + i), frac: uint32(i * 999 % 1_000_000), data: data, orig: uint32(size + i%3)})
	}
	file := pcapFile(binary.BigEndian, magicMicro, 2, 4, MaxRecord, 1, recs...)
	for name, src := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(file) },
		"trickled": func() io.Reader { return iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(file))) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(file)) },
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(src())
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range recs {
				var got Record
				if i%2 == 0 {
					got, err = r.NextRecord()
				} else {
					var p Packet
					p, err = r.Next()
					got = Record{Sec: p.Timestamp.Unix(), Nsec: int32(p.Timestamp.Nanosecond()), Length: uint32(p.Length), Data: p.Data}
				}
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if got.Sec != int64(want.sec) || got.Nsec != int32(want.frac)*1000 || got.Length != want.orig || !bytes.Equal(got.Data, want.data) {
					t.Fatalf("record %d: got %d.%09d len %d, %d bytes; want %d.%06d len %d, %d bytes",
						i, got.Sec, got.Nsec, got.Length, len(got.Data), want.sec, want.frac, want.orig, len(want.data))
				}
			}
			if _, err := r.NextRecord(); err != io.EOF {
				t.Fatalf("after the last record: %v", err)
			}
			if r.Offset() != int64(len(file)) {
				t.Fatalf("offset %d at the end of %d bytes", r.Offset(), len(file))
			}
		})
	}
}
