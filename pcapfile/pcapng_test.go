package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

type endian interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// ngWriter builds pcapng files block by block in one byte order.
type ngWriter struct {
	order  endian
	b      bytes.Buffer
	blocks []ngBlock
}

type ngBlock struct {
	start, end int
	packet     bool
}

func (w *ngWriter) block(typ uint32, body []byte) *ngWriter {
	body = append(body, make([]byte, (4-len(body)%4)%4)...)
	total := uint32(len(body) + 12)
	var b []byte
	b = w.order.AppendUint32(b, typ)
	b = w.order.AppendUint32(b, total)
	b = append(b, body...)
	b = w.order.AppendUint32(b, total)
	packet := typ == pcapngBlockEPB || typ == pcapngBlockSPB || typ == pcapngBlockOPB
	w.blocks = append(w.blocks, ngBlock{start: w.b.Len(), end: w.b.Len() + len(b), packet: packet})
	w.b.Write(b)
	return w
}

func (w *ngWriter) shb(major, minor uint16) *ngWriter {
	var b []byte
	b = w.order.AppendUint32(b, pcapngByteOrderMagic)
	b = w.order.AppendUint16(b, major)
	b = w.order.AppendUint16(b, minor)
	b = w.order.AppendUint64(b, ^uint64(0))
	return w.block(pcapngBlockSHB, b)
}

func (w *ngWriter) option(b []byte, code uint16, v []byte) []byte {
	b = w.order.AppendUint16(b, code)
	b = w.order.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return append(b, make([]byte, (4-len(v)%4)%4)...)
}

// idb adds an interface; tsresol < 0 leaves the option out (microseconds).
func (w *ngWriter) idb(linktype uint16, snaplen uint32, tsresol int, tsoffset int64) *ngWriter {
	var b []byte
	b = w.order.AppendUint16(b, linktype)
	b = w.order.AppendUint16(b, 0)
	b = w.order.AppendUint32(b, snaplen)
	b = w.option(b, 2, []byte("eth0")) // if_name, to be skipped
	if tsresol >= 0 {
		b = w.option(b, optTSResol, []byte{byte(tsresol)})
	}
	if tsoffset != 0 {
		b = w.option(b, optTSOffset, w.order.AppendUint64(nil, uint64(tsoffset)))
	}
	b = w.option(b, optEnd, nil)
	return w.block(pcapngBlockIDB, b)
}

func (w *ngWriter) epb(iface uint32, ts uint64, data []byte, origlen uint32) *ngWriter {
	var b []byte
	b = w.order.AppendUint32(b, iface)
	b = w.order.AppendUint32(b, uint32(ts>>32))
	b = w.order.AppendUint32(b, uint32(ts))
	b = w.order.AppendUint32(b, uint32(len(data)))
	b = w.order.AppendUint32(b, origlen)
	b = append(b, data...)
	b = append(b, make([]byte, (4-len(data)%4)%4)...)
	b = w.option(b, 1, []byte("a comment"))
	return w.block(pcapngBlockEPB, b)
}

func (w *ngWriter) opb(iface uint16, ts uint64, data []byte, origlen uint32) *ngWriter {
	var b []byte
	b = w.order.AppendUint16(b, iface)
	b = w.order.AppendUint16(b, 0)
	b = w.order.AppendUint32(b, uint32(ts>>32))
	b = w.order.AppendUint32(b, uint32(ts))
	b = w.order.AppendUint32(b, uint32(len(data)))
	b = w.order.AppendUint32(b, origlen)
	b = append(b, data...)
	return w.block(pcapngBlockOPB, b)
}

func (w *ngWriter) spb(data []byte, origlen uint32) *ngWriter {
	b := w.order.AppendUint32(nil, origlen)
	return w.block(pcapngBlockSPB, append(b, data...))
}

func newNG(order endian) *ngWriter { return &ngWriter{order: order} }

func TestPcapngTwoInterfaces(t *testing.T) {
	for _, order := range []endian{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			eth := bytes.Repeat([]byte{0xee}, 60)
			raw := bytes.Repeat([]byte{0x45}, 200) // beyond interface 1's snap length of 128
			base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
			w := newNG(order).shb(1, 0).
				idb(1, 65535, -1, 0).  // Ethernet, microseconds
				idb(101, 128, 9, 0).   // raw IP, nanoseconds
				idb(1, 0, 0x80|20, 0). // Ethernet, 2^-20 s, no snap length
				block(0x0bad, []byte("an unknown block to skip")).
				epb(0, uint64(base.UnixMicro())+1, eth, 1514).
				epb(1, uint64(base.UnixNano())+7, raw, 200).
				epb(2, uint64(base.Unix())<<20|1<<19, eth, 60).
				opb(1, uint64(base.UnixNano()), eth[:10], 10).
				spb(eth, 1514)
			got, r, err := readAll(t, w.b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if r.Format() != "pcapng" {
				t.Errorf("format %q", r.Format())
			}
			if lts := r.LinkTypes(); len(lts) != 2 || lts[0] != 1 || lts[1] != 101 {
				t.Errorf("link types %v", lts)
			}
			want := []struct {
				ts           time.Time
				iface, lt    int
				caplen, olen int
			}{
				{base.Add(time.Microsecond), 0, 1, 60, 1514},
				{base.Add(7), 1, 101, 200, 200},
				{base.Add(time.Second / 2), 2, 1, 60, 60},
				{base, 1, 101, 10, 10},
				{time.Unix(0, 0), 0, 1, 60, 1514}, // SPB: no timestamp; cut to the block's data
			}
			if len(got) != len(want) {
				t.Fatalf("%d packets, want %d", len(got), len(want))
			}
			for i, w := range want {
				p := got[i]
				if !p.Timestamp.Equal(w.ts) || p.InterfaceIndex != w.iface || int(p.LinkType) != w.lt ||
					p.CaptureLength != w.caplen || p.Length != w.olen || len(p.Data) != w.caplen {
					t.Errorf("packet %d: got ts=%v if=%d lt=%d caplen=%d len=%d, want %+v", i, p.Timestamp, p.InterfaceIndex, p.LinkType, p.CaptureLength, p.Length, w)
				}
			}
		})
	}
}

// Sections reset the interfaces and may change byte order; libpcap refuses the latter, we read on.
func TestPcapngSections(t *testing.T) {
	le := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0).epb(0, 1e6, []byte{1}, 1)
	be := newNG(binary.BigEndian).shb(1, 2).idb(228, 0, -1, 100).epb(0, 2e6, []byte{2, 2}, 2)
	got, r, err := readAll(t, append(le.b.Bytes(), be.b.Bytes()...))
	if err != nil || len(got) != 2 {
		t.Fatalf("%d packets, %v", len(got), err)
	}
	if got[1].LinkType != 228 || got[1].Timestamp.Unix() != 102 || !bytes.Equal(got[1].Data, []byte{2, 2}) {
		t.Errorf("second section packet: %+v", got[1])
	}
	if len(r.LinkTypes()) != 2 {
		t.Errorf("link types %v", r.LinkTypes())
	}

	// A packet on an interface the current section does not describe is an error, even if an earlier
	// section had it.
	bad := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0).epb(0, 0, []byte{1}, 1).shb(1, 0)
	orphan := int64(bad.b.Len())
	bad.epb(0, 0, []byte{1}, 1)
	got, _, err = readAll(t, bad.b.Bytes())
	var fe *FormatError
	if len(got) != 1 || !errors.As(err, &fe) || fe.Offset != orphan {
		t.Errorf("got %d packets, err %v", len(got), err)
	}
}

func TestPcapngErrors(t *testing.T) {
	ng := func() *ngWriter { return newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0) }
	huge := ng()
	huge.b.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, pcapngBlockEPB), 0xfffffff0))
	for name, tc := range map[string]struct {
		file   []byte
		offset int64
	}{
		"major version 2":          {newNG(binary.LittleEndian).shb(2, 0).b.Bytes(), 0},
		"absurd block length":      {huge.b.Bytes(), int64(ng().b.Len())},
		"caplen beyond block":      {ng().epb(0, 0, []byte{1}, 1).b.Bytes()[:ng().b.Len()+20], int64(ng().b.Len())},
		"bad if_tsresol":           {ng().idb(1, 0, 30, 0).b.Bytes(), int64(ng().b.Len())},
		"packet before interfaces": {newNG(binary.LittleEndian).shb(1, 0).epb(0, 0, nil, 0).b.Bytes(), 28},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := readAll(t, tc.file)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != tc.offset {
				t.Fatalf("want a FormatError at %d, got %v", tc.offset, err)
			}
		})
	}
}
