package replay

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/packetrecord"
)

// ringFrame is the i-th frame of the ring tests: an IPv4/UDP packet whose ports vary with i (so
// that records spread over flows and partitions), padded to size bytes with i's digits.
func ringFrame(i, size int) []byte {
	f := make([]byte, 42, max(size, 42))
	copy(f[12:], []byte{0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	f[34], f[35], f[36], f[37] = byte(i>>8), byte(i), 0, 53
	for len(f) < size {
		f = append(f, fmt.Sprint(i)...)
	}
	return f[:max(size, 42)]
}

// A producer that answers records late and out of order (per partition, in bursts, as the broker's
// acks do) gets every record intact until it answers it, each tag called once, while the ring
// reuses its few slots and chunks many times over, waiting for room.
func TestRecordRingReusesSlotsAndChunksInOrderOfProduction(t *testing.T) {
	const (
		slots      = 64
		maxBytes   = 128 << 10 // two 64 KiB chunks
		records    = 5000
		partitions = 3
	)
	q := newRecordRing(slots, maxBytes)
	sizes := func(i int) int {
		switch {
		case i%997 == 0:
			return 100 << 10 // larger than a chunk: memory of its own
		case i%7 == 0:
			return 9000 // a jumbo frame: a few fill a chunk
		}
		return 60 + i%200
	}
	type sent struct {
		rec   *kgo.Record
		i     int
		value []byte // what the record must still hold when it is answered
	}
	out := make(chan sent, slots)
	var tagged sync.Map
	var answered sync.WaitGroup
	answered.Add(1)
	go func() { // the producer: holds each partition's records and answers them in bursts
		defer answered.Done()
		rng := rand.New(rand.NewSource(1))
		held := make([][]sent, partitions)
		answer := func(p int) {
			for _, s := range held[p] {
				if !bytes.Equal(s.rec.Value, s.value) {
					t.Errorf("record %d was overwritten before it was answered", s.i)
				}
				size, tag := q.release(s.rec)
				tag(size, nil)
			}
			held[p] = held[p][:0]
		}
		idle := time.NewTimer(time.Hour)
		for {
			idle.Reset(200 * time.Microsecond)
			select {
			case s, ok := <-out:
				if !ok {
					for p := range held {
						answer(p)
					}
					return
				}
				p := partition(s.rec, partitions)
				held[p] = append(held[p], s)
				if rng.Intn(100) == 0 {
					answer(rng.Intn(partitions))
				}
			case <-idle.C:
				if q.awaited.Load() != 0 { // the writer waits for room
					answer(rng.Intn(partitions))
				}
			}
		}
	}()
	for i := range records {
		frame := ringFrame(i, sizes(i))
		m := packetrecord.Meta{Timestamp: time.Unix(int64(i), 0), Node: "n", Interface: "replay", LinkType: linktype.Ethernet, OrigLen: len(frame)}
		i := i
		rec := q.encode(m, frame, func(size int, err error) {
			if _, dup := tagged.LoadOrStore(i, size); dup {
				t.Errorf("record %d answered twice", i)
			}
		})
		gm, gf, err := packetrecord.Decode(rec)
		if err != nil || !bytes.Equal(gf, frame) || !gm.Timestamp.Equal(m.Timestamp) || gm.OrigLen != len(frame) {
			t.Fatalf("record %d decodes as %+v (%v)", i, gm, err)
		}
		// The partition of the hash computed while encoding is packetrecord's, which recomputes it.
		plain := &kgo.Record{Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		for n := 1; n <= 7; n++ {
			if got, want := partition(rec, n), packetrecord.Partition(plain, n); got != want {
				t.Fatalf("record %d: partition %d of %d, packetrecord says %d", i, got, n, want)
			}
		}
		out <- sent{rec, i, append([]byte(nil), rec.Value...)}
	}
	close(out)
	answered.Wait()
	n := 0
	tagged.Range(func(any, any) bool { n++; return true })
	if n != records {
		t.Fatalf("%d records answered, want %d", n, records)
	}
	if q.made > q.maxChunks {
		t.Fatalf("%d chunks made, the bound is %d", q.made, q.maxChunks)
	}
	t.Logf("%d records through %d slots and %d chunks of %d KiB; the writer waited %d times", records, slots, q.made, q.chunkBytes>>10, q.waits)
	if q.waits == 0 {
		t.Fatal("the writer never waited: the test did not fill the ring")
	}
}

// Through a real producer, a ring far smaller than the records of the run (so that Send waits for
// the broker over and over) still puts exactly the file's packets into the topic.
func TestReplayIntoTopicThroughASmallRing(t *testing.T) {
	cfg := kafkatest.Plain(t)
	const partitions, loops = 3, 3
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	file := readFile(t, path)
	topic := kafkatest.NewTopic(t, cfg, partitions)
	ctx := context.Background()
	tg, err := OpenTopic(ctx, cfg, topic, TopicOptions{Node: "test", Interface: "replay"})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	tg.ring = newRecordRing(32, 128<<10)
	r, err := New(Config{Open: OpenFile(path), Pace: Pace{Mode: TopSpeed}, Loops: loops, Target: tg})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil || sum.PacketsSent != uint64(loops*len(file)) {
		t.Fatalf("sent %d of %d: %v\n%s", sum.PacketsSent, loops*len(file), err, sum)
	}
	t.Logf("%d records through 32 slots; the writer waited %d times", sum.PacketsSent, tg.ring.waits)
	if tg.ring.waits == 0 {
		t.Fatal("the writer never waited for the broker")
	}
	checkTopicHolds(t, cfg, topic, partitions, file, loops)
	if !strings.Contains(sum.String(), fmt.Sprintf("Loops completed:           %d", loops)) {
		t.Fatalf("summary:\n%s", sum)
	}
}

// Building a record in the ring and handing it back (what the producer's promise does) allocates
// nothing.
func BenchmarkRecordRing(b *testing.B) {
	q := newRecordRing(topicBufferRecords, topicBufferBytes)
	frame := ringFrame(1, 70)
	m := packetrecord.Meta{Timestamp: time.Unix(1, 0), Node: "bench", Interface: "replay", LinkType: linktype.Ethernet, OrigLen: len(frame)}
	done := func(int, error) {}
	b.ReportAllocs()
	for b.Loop() {
		q.release(q.encode(m, frame, done))
	}
}
