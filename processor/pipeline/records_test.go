package pipeline

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/packetjson"
)

// The packet records of a poll are written into reused buffers: once grown, a poll's records cost no
// allocation, and each record's key and value are what packetjson writes for its packet, even after the
// arena moved while growing.
func TestPacketRecordsBatch(t *testing.T) {
	// A TCP SYN over IPv4 over Ethernet.
	frame := []byte{
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
		0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0,
	}
	var p decode.Packet
	decode.NewDecoder().Decode(frame, decode.LinkTypeEthernet, time.Unix(1, 0), len(frame), &p)
	want := packetjson.Append(nil, 0, &p, frame)
	var b packetRecords
	fill := func(n int) {
		for i := range n {
			b.add(1, int64(i), &p, frame)
		}
	}
	fill(1000)
	recs := b.batch("t")
	if len(recs) != 1000 {
		t.Fatalf("%d records, want 1000", len(recs))
	}
	for i, r := range recs {
		if r.Topic != "t" || string(r.Key) != fmt.Sprintf("1:%d", i) || !bytes.Equal(r.Value, want) {
			t.Fatalf("record %d: topic %s key %s value %s; want value %s", i, r.Topic, r.Key, r.Value, want)
		}
	}
	b.reset()
	allocs := testing.AllocsPerRun(5, func() {
		fill(1000)
		b.batch("t")
		b.reset()
	})
	if allocs != 0 {
		t.Errorf("a poll of 1000 records allocated %.0f times once the buffers had grown", allocs)
	}
}
