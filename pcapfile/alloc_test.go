package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// allocBound is the most a Reader may allocate over its whole life on plain (uncompressed) input: the
// 64 KiB read buffer, the record buffer growing by doublings to maxBlock (under 1 MiB in all), the
// interface table of one section growing by doublings to MaxInterfaces entries of 24 bytes (3 MiB in
// all) and the list of distinct link types (65536 of 4 bytes, about 1.3 MiB with append's growth).
const allocBound = 8 << 20

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// drain reads src to its end or first error and reports the bytes allocated doing so.
func drain(t *testing.T, src []byte) (allocated uint64, packets int, err error) {
	t.Helper()
	before := totalAlloc()
	r, err := NewReader(bytes.NewReader(src))
	if err == nil {
		for {
			if _, err = r.Next(); err != nil {
				break
			}
			packets++
		}
	}
	return totalAlloc() - before, packets, err
}

func TestAllocationBound(t *testing.T) {
	// Interfaces without end, each with a link type of its own, then a second section doing it again.
	idbs := newNG(binary.LittleEndian).shb(1, 0)
	for i := 0; i <= MaxInterfaces; i++ {
		idbs.idb(uint16(i), 0, -1, 0)
	}
	// Packets as large as allowed, and one larger.
	big := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0)
	for range 8 {
		big.epb(0, 0, make([]byte, MaxRecord), MaxRecord)
	}
	big.epb(0, 0, make([]byte, MaxRecord+1), MaxRecord+1)
	pcapBig := pcapFile(binary.LittleEndian, magicMicro, 2, 4, 0, 1, rec{data: make([]byte, MaxRecord)}, rec{data: make([]byte, MaxRecord+1)})
	// Records claiming 4 GiB, in each format.
	liar := pcapFile(binary.LittleEndian, magicMicro, 2, 4, 0, 1)
	liar = append(liar, make([]byte, 8)...)
	liar = binary.LittleEndian.AppendUint32(liar, 0xffffffff)
	liar = binary.LittleEndian.AppendUint32(liar, 0xffffffff)
	ngLiar := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0).b.Bytes()
	ngLiar = binary.LittleEndian.AppendUint32(ngLiar, pcapngBlockEPB)
	ngLiar = binary.LittleEndian.AppendUint32(ngLiar, 0xfffffffc)
	ngLiar = append(ngLiar, make([]byte, 1<<20)...)
	// An unknown block claiming 4 GiB is skipped without buffering, to the end of the input.
	ngSkip := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, -1, 0).b.Bytes()
	ngSkip = binary.LittleEndian.AppendUint32(ngSkip, 0x0bad)
	ngSkip = binary.LittleEndian.AppendUint32(ngSkip, 0xfffffffc)
	ngSkip = append(ngSkip, make([]byte, 4<<20)...)

	for name, tc := range map[string]struct {
		file    []byte
		packets int
	}{
		"65537 interfaces":    {idbs.b.Bytes(), 0},
		"pcapng max record":   {big.b.Bytes(), 8},
		"pcap max record":     {pcapBig, 1},
		"pcap 4 GiB record":   {liar, 0},
		"pcapng 4 GiB EPB":    {ngLiar, 0},
		"4 GiB unknown block": {ngSkip, 0},
	} {
		t.Run(name, func(t *testing.T) {
			allocated, packets, err := drain(t, tc.file)
			var fe *FormatError
			if packets != tc.packets || !errors.As(err, &fe) {
				t.Errorf("%d packets, want %d; error %v", packets, tc.packets, err)
			}
			if allocated > allocBound {
				t.Errorf("allocated %d bytes, bound %d", allocated, allocBound)
			}
			t.Logf("%d packets, %d bytes allocated, %v", packets, allocated, err)
		})
	}
}

// Once the buffer has grown to the largest record, reading a packet allocates nothing.
func TestNoAllocationPerPacket(t *testing.T) {
	var recs []rec
	for i := range 2000 {
		recs = append(recs, rec{sec: uint32(i), data: make([]byte, 60+i%1400), orig: 1514})
	}
	ng := newNG(binary.LittleEndian).shb(1, 0).idb(1, 0, 9, 0).idb(101, 0, -1, 0)
	for i, r := range recs {
		ng.epb(uint32(i%2), uint64(i), r.data, r.orig)
	}
	for name, file := range map[string][]byte{
		"pcap":   pcapFile(binary.LittleEndian, magicMicro, 2, 4, 65535, 1, recs...),
		"pcapng": ng.b.Bytes(),
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			for range 1500 { // past the largest record
				if _, err := r.Next(); err != nil {
					t.Fatal(err)
				}
			}
			allocs := testing.AllocsPerRun(200, func() {
				if _, err := r.Next(); err != nil && err != io.EOF {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Next: %v allocations per packet", allocs)
			}
			allocs = testing.AllocsPerRun(200, func() {
				if _, err := r.NextRecord(); err != nil && err != io.EOF {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("NextRecord: %v allocations per packet", allocs)
			}
		})
	}
}
