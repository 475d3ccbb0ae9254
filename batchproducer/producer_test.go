package batchproducer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
)

// packet is one packet of a real capture, as a Writer is given it.
type packet struct {
	m     packetrecord.Meta
	frame []byte
}

func readPackets(t testing.TB, name, iface string) []packet {
	t.Helper()
	path := filepath.Join(testenv.Pcaps(t), name)
	r, err := pcapfile.Open(path)
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	defer r.Close()
	var out []packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, packet{
			m:     packetrecord.Meta{Timestamp: p.Timestamp, Node: "node-a", Interface: iface, LinkType: p.LinkType, OrigLen: p.Length},
			frame: append([]byte(nil), p.Data...),
		})
	}
}

// outcomes sums Done's reports by tag.
type outcomes struct {
	mu     sync.Mutex
	ok     map[any]int
	bytes  map[any]int
	failed map[any]int
	last   error
}

func newOutcomes() *outcomes {
	return &outcomes{ok: map[any]int{}, bytes: map[any]int{}, failed: map[any]int{}}
}

func (o *outcomes) done(tag any, records, frameBytes int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failed[tag] += records
		o.last = err
		return
	}
	o.ok[tag] += records
	o.bytes[tag] += frameBytes
}

func newProducer(t testing.TB, kafka kafkaconn.Config, topic string, cfg Config) *Producer {
	t.Helper()
	cl, err := workload.NewPacketsProducer(context.Background(), workload.Producer{Kafka: kafka, Topic: topic, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cfg.Topic = topic
	if cfg.Linger == 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 1<<20 - 64
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = 64 << 20
	}
	if cfg.BufferRecords == 0 {
		cfg.BufferRecords = 50000
	}
	p, err := New(context.Background(), cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(time.Second) })
	return p
}

// consume reads every record of topic from the start.
func consume(t testing.TB, kafka kafkaconn.Config, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kafka.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records consumed before the timeout", len(recs), want)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs[0].Err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// wire is a record as franz-go's consumer decoded it from our batches, or as packetrecord.Encode
// builds it (the oracle): key, value and headers.
func wire(key, value []byte, headers []kgo.RecordHeader) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%x|%x", key, value)
	for _, h := range headers {
		fmt.Fprintf(&b, "|%s=%x", h.Key, h.Value)
	}
	return b.String()
}

// Every record two Writers append reaches the topic as packetrecord.Encode would have built it, in
// the partition franz-go's partitioner would have chosen, each Writer's records of a partition in the
// order appended, with every codec; Done counts them all, by Writer.
func TestRecordsArriveAsEncoded(t *testing.T) {
	kafka := kafkatest.Plain(t)
	a := readPackets(t, "zeek/echo-connections.pcap", "eth0")
	b := readPackets(t, "ndpi/1kxun.pcap", "eth1")
	for _, codec := range []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.NoCompression(), kgo.ZstdCompression(), kgo.SnappyCompression(), kgo.GzipCompression()} {
		t.Run(codecName(codec), func(t *testing.T) {
			const partitions = 3
			topic := kafkatest.NewTopic(t, kafka, partitions)
			compressor, err := workload.PacketsCompressor(codec)
			if err != nil {
				t.Fatal(err)
			}
			out := newOutcomes()
			// Small batches, so each Writer's records span many batches of every partition.
			p := newProducer(t, kafka, topic, Config{Compressor: compressor, BatchBytes: 32 << 10, Done: out.done})
			var wg sync.WaitGroup
			for tag, pkts := range map[string][]packet{"a": a, "b": b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := p.NewWriter(tag)
					for _, pk := range pkts {
						for !w.Append(pk.m.Timestamp, pk.m, pk.frame) {
							w.Wait(nil)
						}
					}
					w.Close()
				}()
			}
			wg.Wait()
			if err := p.Close(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			if out.ok["a"] != len(a) || out.ok["b"] != len(b) || len(out.failed) != 0 {
				t.Fatalf("Done: published %v, failed %v (%v); want a %d, b %d", out.ok, out.failed, out.last, len(a), len(b))
			}
			if want := frameBytes(a); out.bytes["a"] != want {
				t.Errorf("Done: %d frame bytes of a, want %d", out.bytes["a"], want)
			}
			if bytes, records := p.Held(); bytes != 0 || records != 0 {
				t.Errorf("still held after Close: %d bytes, %d records", bytes, records)
			}

			recs := consume(t, kafka, topic, len(a)+len(b))
			want := map[string][]string{} // by partition and interface: the records in append order
			for _, pkts := range [][]packet{a, b} {
				for _, pk := range pkts {
					r := packetrecord.Encode(pk.m, pk.frame)
					part := packetrecord.Partition(r, partitions)
					k := fmt.Sprint(part, pk.m.Interface)
					want[k] = append(want[k], wire(r.Key, r.Value, r.Headers))
				}
			}
			got := map[string][]string{}
			sort.SliceStable(recs, func(i, j int) bool { return recs[i].Offset < recs[j].Offset })
			for _, r := range recs {
				m, _, err := packetrecord.Decode(r)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Timestamp.Equal(m.Timestamp.Truncate(time.Millisecond)) {
					t.Fatalf("record time %v, want the capture time %v to the ms", r.Timestamp, m.Timestamp)
				}
				k := fmt.Sprint(r.Partition, m.Interface)
				got[k] = append(got[k], wire(r.Key, r.Value, r.Headers))
			}
			if len(got) != len(want) {
				t.Fatalf("records in %d partition×interface groups, want %d", len(got), len(want))
			}
			for k, w := range want {
				g := got[k]
				if len(g) != len(w) {
					t.Fatalf("%s: %d records, want %d", k, len(g), len(w))
				}
				for i := range w {
					if g[i] != w[i] {
						t.Fatalf("%s: record %d differs from packetrecord.Encode's:\n got %.200s\nwant %.200s", k, i, g[i], w[i])
					}
				}
			}
		})
	}
}

func codecName(c kgo.CompressionCodec) string {
	switch c {
	case kgo.Lz4Compression():
		return "lz4"
	case kgo.NoCompression():
		return "none"
	case kgo.ZstdCompression():
		return "zstd"
	case kgo.SnappyCompression():
		return "snappy"
	}
	return "gzip"
}

func frameBytes(pkts []packet) int {
	n := 0
	for _, p := range pkts {
		n += len(p.frame)
	}
	return n
}

// A batch sent again with the sequence numbers it was written with (a try whose answer was lost) is
// recognised by the broker and not written twice.
func TestResentBatchIsWrittenOnce(t *testing.T) {
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	out := newOutcomes()
	p := newProducer(t, kafka, topic, Config{Done: out.done})
	w := p.NewWriter("a")
	pkts := readPackets(t, "zeek/echo-connections.pcap", "eth0")[:50]
	for _, pk := range pkts {
		if !w.Append(pk.m.Timestamp, pk.m, pk.frame) {
			t.Fatal("bound reached")
		}
	}
	b := w.open[0]
	w.open[0], w.nOpen = nil, 0
	if !w.seal(b) {
		t.Fatal("nothing sealed")
	}
	pt := b.part
	seq := pt.seq
	for try := range 3 {
		pt.seq = seq // as a try whose answer never came: the same numbers again
		if err := pt.deliver(b); err != nil {
			t.Fatalf("try %d: %v", try+1, err)
		}
	}
	if pt.seq != nextSeq(seq, len(pkts)) {
		t.Fatalf("sequence %d after the batch, want %d", pt.seq, nextSeq(seq, len(pkts)))
	}
	if n := endOffset(t, kafka, topic); n != int64(len(pkts)) {
		t.Fatalf("topic holds %d records after 3 tries of a %d-record batch", n, len(pkts))
	}
	// The next batch follows on.
	for _, pk := range pkts[:7] {
		w.Append(pk.m.Timestamp, pk.m, pk.frame)
	}
	w.Close()
	if err := p.Close(30 * time.Second); err != nil || out.ok["a"] != 7 {
		t.Fatalf("Close: %v; %d published, want the 7 of the second batch (the first went by hand)", err, out.ok["a"])
	}
	if n := endOffset(t, kafka, topic); n != int64(len(pkts)+7) {
		t.Fatalf("topic holds %d records, want %d", n, len(pkts)+7)
	}
}

func endOffset(t testing.TB, kafka kafkaconn.Config, topic string) int64 {
	t.Helper()
	cl, err := kafka.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// Append refuses records beyond the bound, and Wait returns once answered batches free room; the
// bound holds whatever the Writer does, and every record still arrives.
func TestBoundHoldsAndFrees(t *testing.T) {
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 3)
	out := newOutcomes()
	const bound = 500
	p := newProducer(t, kafka, topic, Config{BufferRecords: bound, Done: out.done})
	pkts := readPackets(t, "ndpi/1kxun.pcap", "eth0")
	w := p.NewWriter("a")
	refused := 0
	for _, pk := range pkts {
		for !w.Append(pk.m.Timestamp, pk.m, pk.frame) {
			refused++
			if !w.Wait(time.After(10 * time.Second)) {
				t.Fatal("no room within 10 s")
			}
		}
		if _, records := p.Held(); records > bound {
			t.Fatalf("%d records held, bound %d", records, bound)
		}
	}
	w.Close()
	if err := p.Close(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if refused == 0 {
		t.Fatalf("%d packets never reached the bound of %d", len(pkts), bound)
	}
	if out.ok["a"] != len(pkts) {
		t.Fatalf("published %d of %d", out.ok["a"], len(pkts))
	}
}

// Partitions added to the topic while the producer runs get records, where franz-go's partitioner
// would put them over the new count.
func TestTopicThatGrowsIsFollowed(t *testing.T) {
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	out := newOutcomes()
	p := newProducer(t, kafka, topic, Config{Done: out.done})
	pkts := readPackets(t, "ndpi/1kxun.pcap", "eth0")
	w := p.NewWriter("a")
	for _, pk := range pkts {
		w.Append(pk.m.Timestamp, pk.m, pk.frame)
	}
	w.Flush()

	cl, err := kafka.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreatePartitions(context.Background(), 2, topic); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(p.tab.Load().parts) != 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the producer did not see the new partitions")
		}
		p.staleMetadata()
	}
	for _, pk := range pkts {
		w.Append(pk.m.Timestamp, pk.m, pk.frame)
	}
	w.Close()
	if err := p.Close(30 * time.Second); err != nil || out.ok["a"] != 2*len(pkts) {
		t.Fatalf("Close: %v; published %d of %d", err, out.ok["a"], 2*len(pkts))
	}
	recs := consume(t, kafka, topic, 2*len(pkts))
	perPartition := map[int32]int{}
	for _, r := range recs {
		perPartition[r.Partition]++
	}
	want := map[int32]int{0: len(pkts)}
	for _, pk := range pkts {
		want[int32(packetrecord.Partition(packetrecord.Encode(pk.m, pk.frame), 3))]++
	}
	if fmt.Sprint(perPartition) != fmt.Sprint(want) {
		t.Fatalf("records by partition %v, want %v", perPartition, want)
	}
}
