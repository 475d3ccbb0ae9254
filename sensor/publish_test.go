package sensor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
)

// publishRig is the sensor's path from a captured frame to the producer (feeder.packet), with the
// real broker behind it and the frames of the e2e capture in front: what a ring does per packet,
// without the ring.
type publishRig struct {
	pub    *publisher
	f      *feeder
	frames [][]byte
	i      int

	unpooledPromise func(*kgo.Record, error)
}

// smallPcap has small packets (~67 bytes a frame), as the benchmark's small input: the per-packet
// costs show, not the per-byte ones.
const smallPcap = "zeek/echo-connections.pcap"

func newPublishRig(tb testing.TB, pcap string, opts ...kgo.Opt) *publishRig {
	return newPublishRigBuffer(tb, pcap, DefaultConfig().BufferPackets, opts...)
}

func newPublishRigBuffer(tb testing.TB, pcap string, buffer int, opts ...kgo.Opt) *publishRig {
	kafka := kafkatest.Plain(tb)
	topic := kafkatest.NewTopic(tb, kafka, e2ePartitions)
	frames, lt := readPcap(tb, sharedPcap(tb, pcap))
	cfg := DefaultConfig()
	cfg.Kafka, cfg.Topic, cfg.Node = kafka, topic, "bench"
	cfg.kafkaOpts = opts
	cfg.BufferPackets = buffer
	pub, err := newPublisher(context.Background(), &cfg, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pub.cl.Close)
	l := link{Name: "veth0", LinkType: lt}
	r := &publishRig{pub: pub, f: newFeeder(pub, &ifaceCounters{name: l.Name}, cfg.Node, l, cfg.SnapLen, 1), frames: frames}
	r.unpooledPromise = r.unpooled
	return r
}

func (r *publishRig) next() {
	d := r.frames[r.i%len(r.frames)]
	r.i++
	r.f.packet(captured{data: d, ts: time.Unix(1700000000, int64(r.i)), origLen: len(d)})
}

// nextUnpooled is next with the record allocated per packet (packetrecord.Encode), for comparison.
func (r *publishRig) nextUnpooled() {
	d := r.frames[r.i%len(r.frames)]
	r.i++
	c := r.f.c
	c.captured.Add(1)
	m := packetrecord.Meta{Timestamp: time.Unix(1700000000, int64(r.i)), Node: r.f.node, Interface: r.f.link.Name, LinkType: r.f.link.LinkType, OrigLen: len(d)}
	// Produce, not TryProduce: it waits when the buffer is full, as the pooled path does.
	r.pub.cl.Produce(context.Background(), packetrecord.Encode(m, d), r.unpooledPromise)
}

func (r *publishRig) unpooled(rec *kgo.Record, err error) { r.f.c.count(len(rec.Value), err) }

// flush waits for every record's answer and checks that all were published.
func (r *publishRig) flush(tb testing.TB) {
	if err := r.pub.cl.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); r.f.c.snapshot().Buffered() > 0; {
		if time.Now().After(deadline) {
			tb.Fatalf("records still unanswered: %+v", r.f.c.snapshot())
		}
		time.Sleep(time.Millisecond)
	}
	if c := r.f.c.snapshot(); c.PacketsPublished != c.PacketsCaptured {
		tb.Fatalf("published %d of %d: %+v", c.PacketsPublished, c.PacketsCaptured, c)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerCPU is the CPU the broker of hack/kafka.sh has used (0 when its pid is not known): compression
// moves work between client and broker, so both count. Others using the broker at the time count too.
func brokerCPU() time.Duration {
	pid, err := os.ReadFile(filepath.Join(os.Getenv("CAPFLEET_RUN"), "kafka.pid"))
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis; utime and stime are the 14th and 15th of the line.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// Producing a captured packet allocates nothing: the record comes from the pool and goes back from
// the promise. What franz-go allocates per batch and request (whoever's goroutine) is counted too,
// spread over the packets of a batch; the bound allows for that, not for one allocation a packet.
func TestPublishAllocatesNothingPerPacket(t *testing.T) {
	r := newPublishRig(t, smallPcap)
	for range 20000 { // warm: slabs made, batches and connections set up
		r.next()
	}
	r.flush(t)
	const packets = 200000
	before := mallocs()
	for range packets {
		r.next()
	}
	r.flush(t)
	per := float64(mallocs()-before) / packets
	t.Logf("%.4f allocations a packet (all goroutines)", per)
	if per > 0.02 {
		t.Fatalf("%.4f allocations a packet, want at most 0.02 (franz-go's per-batch share)", per)
	}
}

// BenchmarkPublish is the sensor's per-packet producing path into the real broker: pooled encoding,
// TryProduce, batching, compression and the promise. ns/op is the rate the producer sustains (the
// feeder waits when the pool is full); cpu-ns/pkt is the process's CPU (every goroutine, franz-go's
// included) per packet, what the sensor pays beyond reading the ring. Sub-benchmarks vary the
// producer's tuning:
//
//	CAPFLEET_RUN=... go test -run '^$' -bench Publish -benchmem ./sensor
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name   string
		opts   []kgo.Opt
		buffer int
	}{
		{"default", nil, 0},  // the sensor's own: lz4, 5 ms linger, 1 MiB batches
		{"unpooled", nil, 0}, // the same, with a record allocated per packet (packetrecord.Encode), as before the pool
		{"zstd", []kgo.Opt{kgo.ProducerBatchCompression(kgo.ZstdCompression())}, 0},
		{"snappy", []kgo.Opt{kgo.ProducerBatchCompression(kgo.SnappyCompression())}, 0},
		{"none", []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}, 0},
		{"linger=20ms", []kgo.Opt{kgo.ProducerLinger(20 * time.Millisecond)}, 0},
		{"linger=1ms", []kgo.Opt{kgo.ProducerLinger(time.Millisecond)}, 0},
		{"batch=256KiB", []kgo.Opt{kgo.ProducerBatchMaxBytes(256 << 10)}, 0},
		{"buffer=16384", nil, 16384},
		{"buffer=32768", nil, 32768},
		{"buffer=100000", nil, 100000},
	} {
		b.Run(c.name, func(b *testing.B) {
			buffer := c.buffer
			if buffer == 0 {
				buffer = DefaultConfig().BufferPackets
			}
			r := newPublishRigBuffer(b, smallPcap, buffer, c.opts...)
			for range 20000 {
				r.next()
			}
			r.flush(b)
			b.ReportAllocs()
			cpu0, m0, k0 := cpuTime(), mallocs(), brokerCPU()
			b.ResetTimer()
			next := r.next
			if c.name == "unpooled" {
				next = r.nextUnpooled
			}
			for b.Loop() {
				next()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms) // before the flush: the buffer as full as the load kept it
			r.flush(b)
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/pkt")
			b.ReportMetric(float64(mallocs()-m0)/float64(b.N), "mallocs/pkt")
			b.ReportMetric(float64(brokerCPU()-k0)/float64(b.N), "broker-cpu-ns/pkt")
			b.ReportMetric(float64(ms.HeapSys-ms.HeapReleased)/(1<<20), "heap-MiB")
		})
	}
}
