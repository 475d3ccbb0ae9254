package packetrecord

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

func poolMeta(i int) Meta {
	return Meta{Timestamp: time.Unix(1700000000, int64(i)*1000), Node: "node-a", Interface: "eth0",
		LinkType: linktype.Ethernet, OrigLen: 60 + i%1400}
}

// poolFrame is an Ethernet/IPv4/TCP frame whose ports vary with i (so flows, and partitions, differ),
// with i in the first four bytes of the destination MAC.
func poolFrame(i int) []byte {
	f := make([]byte, 60+i%1400)
	binary.BigEndian.PutUint32(f, uint32(i))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], uint16(1024+i%5000))
	binary.BigEndian.PutUint16(ip[22:], 80)
	return f
}

// sameRecord fails unless got carries exactly what Encode makes of m and frame.
func sameRecord(t testing.TB, got *kgo.Record, m Meta, frame []byte) {
	t.Helper()
	want := Encode(m, frame)
	if !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) || len(got.Headers) != 1 ||
		got.Headers[0].Key != want.Headers[0].Key || !bytes.Equal(got.Headers[0].Value, want.Headers[0].Value) {
		t.Fatalf("pooled record %+v differs from Encode's %+v", got, want)
	}
}

// A pooled record is Encode's record, byte for byte, however many times its memory was reused.
func TestPoolRecordsEqualEncode(t *testing.T) {
	p := NewPool(1<<20, 1000)
	w := p.NewWriter()
	partitions := map[int]bool{}
	for i := range 20000 {
		m, f := poolMeta(i), poolFrame(i)
		partitions[Partition(Encode(m, f), 7)] = true
		r, ok := w.Encode(m, f, i)
		if !ok {
			t.Fatalf("record %d: pool full with nothing held", i)
		}
		sameRecord(t, r, m, f)
		if got, want := Partition(r, 7), Partition(Encode(m, f), 7); got != want {
			t.Fatalf("record %d: partition %d from the pool, %d from Encode", i, got, want)
		}
		if tag := Release(r); tag != i {
			t.Fatalf("record %d: tag %v back", i, tag)
		}
	}
	if p.InFlight() != 0 {
		t.Fatalf("%d records still counted in flight", p.InFlight())
	}
	if len(partitions) != 7 {
		t.Fatalf("the frames reached %d of 7 partitions: the partition check proves little", len(partitions))
	}
	if made := p.slabsMade.Load(); made > 2 {
		t.Fatalf("%d slabs made for one record at a time", made)
	}
}

// The record bound holds: full, Encode refuses; Wait returns once a record comes back, or when
// told to give up.
func TestPoolBoundsRecords(t *testing.T) {
	const bound = 50
	p := NewPool(1<<20, bound)
	w := p.NewWriter()
	var held []*kgo.Record
	for i := range bound {
		r, ok := w.Encode(poolMeta(i), poolFrame(i), nil)
		if !ok {
			t.Fatalf("refused record %d of %d", i, bound)
		}
		held = append(held, r)
	}
	if _, ok := w.Encode(poolMeta(0), poolFrame(0), nil); ok {
		t.Fatal("took a record beyond the bound")
	}
	if w.Wait(time.After(20 * time.Millisecond)) {
		t.Fatal("Wait returned with nothing released")
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		Release(held[0])
	}()
	if !w.Wait(time.After(5 * time.Second)) {
		t.Fatal("Wait missed the release")
	}
	r, ok := w.Encode(poolMeta(7), poolFrame(7), nil)
	if !ok {
		t.Fatal("refused after a release")
	}
	sameRecord(t, r, poolMeta(7), poolFrame(7))
	// The others were not touched by the reuse.
	for i, r := range held[1:] {
		sameRecord(t, r, poolMeta(i+1), poolFrame(i+1))
	}
}

// The byte bound holds: slabs are made up to it and no further, and a frame larger than a slab is
// still encoded (in memory of its own) and counted.
func TestPoolBoundsBytes(t *testing.T) {
	p := NewPool(minSlabBytes*2, 1<<20)
	w := p.NewWriter()
	var held []*kgo.Record
	for i := 0; ; i++ {
		r, ok := w.Encode(poolMeta(1000), poolFrame(1000), nil)
		if !ok {
			break
		}
		held = append(held, r)
		if i > 1000 {
			t.Fatal("no byte bound")
		}
	}
	if n := len(held) * 1060; n > 2*minSlabBytes || n < minSlabBytes {
		t.Fatalf("%d records of ~1060 bytes held under a %d-byte bound", len(held), 2*minSlabBytes)
	}
	for _, r := range held {
		Release(r)
	}
	big := make([]byte, minSlabBytes+1)
	r, ok := w.Encode(poolMeta(1), big, "big")
	if !ok || !bytes.Equal(r.Value, big) || p.InFlight() != 1 {
		t.Fatalf("frame larger than a slab: ok %v, in flight %d", ok, p.InFlight())
	}
	if tag := Release(r); tag != "big" || p.InFlight() != 0 {
		t.Fatalf("tag %v, in flight %d", tag, p.InFlight())
	}
}

// Writers on several goroutines and a releaser on another, as the rings and franz-go's promise
// worker: every record stays intact until released, and all memory comes back.
func TestPoolConcurrent(t *testing.T) {
	p := NewPool(minSlabBytes*4, 500)
	out := make(chan *kgo.Record, 1000)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := p.NewWriter()
			defer w.Close()
			for i := range 20000 {
				n := g*100000 + i
				r, ok := w.Encode(poolMeta(n), poolFrame(n), n)
				for !ok {
					w.Wait(nil)
					r, ok = w.Encode(poolMeta(n), poolFrame(n), n)
				}
				out <- r
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	for r := range out {
		n := int(binary.BigEndian.Uint32(r.Value))
		sameRecord(t, r, poolMeta(n), poolFrame(n))
		if tag := Release(r); tag != n {
			t.Fatalf("record %d came back with tag %v", n, tag)
		}
	}
	if p.InFlight() != 0 {
		t.Fatalf("%d in flight", p.InFlight())
	}
	if len(p.freeSlabs) != int(p.slabsMade.Load()) {
		t.Fatalf("%d of %d slabs back", len(p.freeSlabs), p.slabsMade.Load())
	}
}

// Producing a record from the pool allocates nothing.
func TestPoolEncodeAllocatesNothing(t *testing.T) {
	p := NewPool(1<<20, 1000)
	w := p.NewWriter()
	m, f := poolMeta(1), poolFrame(1)
	allocs := testing.AllocsPerRun(10000, func() {
		r, _ := w.Encode(m, f, nil)
		Release(r)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a record", allocs)
	}
}

// BenchmarkEncodePooled is BenchmarkEncode through a Pool: encode and release.
func BenchmarkEncodePooled(b *testing.B) {
	frame := make([]byte, 1514)
	m := Meta{Timestamp: time.Now(), Node: "node-a", Interface: "eth0", LinkType: linktype.Ethernet, OrigLen: 1514}
	p := NewPool(64<<20, 100000)
	w := p.NewWriter()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		r, _ := w.Encode(m, frame, nil)
		Release(r)
	}
}
