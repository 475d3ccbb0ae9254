package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Timestamps out of order and years apart become monotonic, step apart, in nanoseconds; the packets'
// bytes and lengths stay.
func TestRetimeKeepsPacketsAndOrdersTime(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	f, _ := os.Create(in)
	w := pcapgo.NewWriter(f) // microseconds, as most of the corpus
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	stamps := []time.Time{time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 3, 0, 0, 0, 0, time.UTC)}
	var frames [][]byte
	for i, ts := range stamps {
		b := bytes.Repeat([]byte{byte(i + 1)}, 60+i)
		frames = append(frames, b)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(b), Length: len(b) + i}, b)
	}
	f.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	n, err := retimeFile(in, out, t0, 2*time.Microsecond)
	if err != nil || n != 3 {
		t.Fatalf("retimeFile: %d packets, %v", n, err)
	}
	g, _ := os.Open(out)
	defer g.Close()
	r, err := pcapgo.NewReader(g)
	if err != nil {
		t.Fatal(err)
	}
	// the nanosecond magic (pcapgo v1.1.19's Reader.Resolution has the two answers swapped)
	head := make([]byte, 4)
	if b, _ := os.ReadFile(out); len(b) >= 4 {
		copy(head, b)
	}
	if !bytes.Equal(head, []byte{0x4d, 0x3c, 0xb2, 0xa1}) || r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 65535 {
		t.Fatalf("header: magic % x, link type %v, snaplen %d", head, r.LinkType(), r.Snaplen())
	}
	for i := range stamps {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(time.Duration(i) * 2 * time.Microsecond); !ci.Timestamp.Equal(want) {
			t.Errorf("packet %d at %v, want %v", i, ci.Timestamp, want)
		}
		if !bytes.Equal(data, frames[i]) || ci.Length != len(frames[i])+i {
			t.Errorf("packet %d changed: %d bytes of %d", i, len(data), ci.Length)
		}
	}
}
