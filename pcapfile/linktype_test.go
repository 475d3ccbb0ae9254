package pcapfile

import (
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"capfleet.dev/capfleet/linktype"
)

// Linux cooked v2 (276), what `tcpdump -i any` writes, is reported whole, in
// either byte order and whatever FCS flags the header's top bits carry.
func TestPcapSLL2(t *testing.T) {
	frame := make([]byte, 40) // the reader does not look inside
	for _, c := range []struct {
		name   string
		order  binary.ByteOrder
		header uint32
	}{
		{"little-endian", binary.LittleEndian, 276},
		{"big-endian", binary.BigEndian, 276},
		{"FCS length flags", binary.LittleEndian, 4<<28 | 0x04000000 | 276},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := pcapFile(c.order, magicMicro, 2, 4, 65535, c.header, rec{sec: 1, data: frame, orig: 40})
			pkts, r, err := readAll(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != 1 || pkts[0].LinkType != linktype.LinuxSLL2 {
				t.Fatalf("packets %+v, want one of link type 276", pkts)
			}
			if lts := r.LinkTypes(); len(lts) != 1 || lts[0] != linktype.LinuxSLL2 {
				t.Fatalf("LinkTypes() = %v, want [276]", lts)
			}
		})
	}
}

func TestPcapngSLL2(t *testing.T) {
	w := newNG(binary.LittleEndian).shb(1, 0).idb(uint16(linktype.Ethernet), 0, -1, 0).
		idb(uint16(linktype.LinuxSLL2), 0, -1, 0).
		epb(0, 1, make([]byte, 14), 14).epb(1, 2, make([]byte, 20), 20)
	pkts, r, err := readAll(t, w.b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 || pkts[0].LinkType != linktype.Ethernet || pkts[1].LinkType != linktype.LinuxSLL2 {
		t.Fatalf("packets %+v, want Ethernet then Linux SLL2", pkts)
	}
	if lts := r.LinkTypes(); len(lts) != 2 || lts[1] != linktype.LinuxSLL2 {
		t.Fatalf("LinkTypes() = %v, want [1 276]", lts)
	}
}

// A real SLL2 capture (Zeek's test trace, made on Linux with -i any).
func TestRealSLL2Capture(t *testing.T) {
	dir := sharedPcaps(t)
	if dir == "" {
		t.Skip("../shared/pcaps not found")
	}
	r, err := Open(filepath.Join(dir, "zeek", "linux_dlt_sll2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for ; ; n++ {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.LinkType != linktype.LinuxSLL2 {
			t.Fatalf("packet %d: link type %d, want 276", n+1, p.LinkType)
		}
	}
	if n != 6 {
		t.Fatalf("%d packets, want 6 (tcpdump and capinfos count 6)", n)
	}
}
