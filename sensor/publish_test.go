package sensor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/workload"
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
	cfg    Config
}

// smallPcap has small packets (~67 bytes a frame), as the benchmark's small input: the per-packet
// costs show, not the per-byte ones.
const smallPcap = "zeek/echo-connections.pcap"

func newPublishRig(tb testing.TB, pcap string) *publishRig {
	return newPublishRigConfig(tb, pcap, func(*Config) {})
}

// newPublishRigConfig is the rig with the sensor's default config changed by set.
func newPublishRigConfig(tb testing.TB, pcap string, set func(*Config)) *publishRig {
	kafka := kafkatest.Plain(tb)
	topic := kafkatest.NewTopic(tb, kafka, e2ePartitions)
	frames, lt := readPcap(tb, sharedPcap(tb, pcap))
	cfg := DefaultConfig()
	cfg.Kafka, cfg.Topic, cfg.Node = kafka, topic, "bench"
	set(&cfg)
	pub, err := newPublisher(context.Background(), &cfg, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	l := link{Name: "veth0", LinkType: lt}
	r := &publishRig{pub: pub, f: newFeeder(pub, &ifaceCounters{name: l.Name}, cfg.Node, l, cfg.SnapLen, 1), frames: frames, cfg: cfg}
	tb.Cleanup(func() {
		r.f.close()
		_ = pub.close(time.Second)
	})
	return r
}

func (r *publishRig) meta(i int, d []byte) packetrecord.Meta {
	return packetrecord.Meta{Timestamp: time.Unix(1700000000, int64(i)), Node: r.f.node, Interface: r.f.link.Name, LinkType: r.f.link.LinkType, OrigLen: len(d)}
}

func (r *publishRig) next() {
	d := r.frames[r.i%len(r.frames)]
	r.i++
	r.f.packet(captured{data: d, ts: time.Unix(1700000000, int64(r.i)), origLen: len(d)})
}

// flush sends the open batches and waits for every record's answer, and checks that all were
// published.
func (r *publishRig) flush(tb testing.TB) {
	r.f.w.Flush()
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

// franzProducer is a franz-go producer on the rig's topic with the sensor's tuning
// (workload.PacketsProducerTuning): the per-record path the sensor's own batches replaced.
func (r *publishRig) franzProducer(tb testing.TB) *kgo.Client {
	codec, err := compressionCodec(r.cfg.Compression)
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := workload.NewPacketsProducer(context.Background(), workload.Producer{
		Kafka: r.cfg.Kafka, Topic: r.cfg.Topic, Timeout: 30 * time.Second,
		Options: append(workload.PacketsProducerTuning(codec), kgo.MaxBufferedRecords(r.cfg.BufferPackets)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

func cpuTime() time.Duration {
	u, s := cpuTimes()
	return u + s
}

// cpuTimes is the process's user and system CPU so far.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
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

// Producing a captured packet allocates nothing: its record is written into its batch's reused
// buffer. What is allocated per batch and request (whoever's goroutine) is counted too, spread over
// the packets of a batch; the bound allows for that, not for one allocation a packet.
func TestPublishAllocatesNothingPerPacket(t *testing.T) {
	r := newPublishRig(t, smallPcap)
	for range 20000 { // warm: buffers made, connections set up
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
		t.Fatalf("%.4f allocations a packet, want at most 0.02 (a batch's share)", per)
	}
}

// BenchmarkPublish is the sensor's per-packet producing path into the real broker: the record
// written into its partition's batch, batches compressed, sent and answered. ns/op is the rate the
// producer sustains (the feeder waits when the buffer is full); cpu-ns/pkt is the process's CPU
// (every goroutine) per packet, what the sensor pays beyond reading the ring. "franz-go" is the
// path the sensor's own batches replaced: a record a packet, produced through franz-go with the
// same tuning. Sub-benchmarks vary the codec and the buffer:
//
//	CAPFLEET_RUN=... go test -run '^$' -bench Publish -benchmem ./sensor
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name        string
		compression string // --compression; "" the default
		buffer      int
	}{
		{"default", "", 0}, // the sensor's own: lz4, 20 ms linger, 1 MiB batches
		{"franz-go", "", 0},
		{"snappy", "snappy", 0},
		{"zstd", "zstd", 0},
		{"none", "none", 0},
		{"buffer=16384", "", 16384},
		{"buffer=100000", "", 100000},
	} {
		b.Run(c.name, func(b *testing.B) {
			buffer := c.buffer
			if buffer == 0 {
				buffer = DefaultConfig().BufferPackets
			}
			r := newPublishRigConfig(b, smallPcap, func(cfg *Config) {
				cfg.BufferPackets = buffer
				if c.compression != "" {
					cfg.Compression = c.compression
				}
			})
			next, flush := r.next, func() { r.flush(b) }
			if c.name == "franz-go" {
				next, flush = r.franzNext(b)
			}
			for range 20000 {
				next()
			}
			flush()
			b.ReportAllocs()
			u0, s0 := cpuTimes()
			m0, k0 := mallocs(), brokerCPU()
			b.ResetTimer()
			for b.Loop() {
				next()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms) // before the flush: the buffer as full as the load kept it
			flush()
			b.StopTimer()
			u1, s1 := cpuTimes()
			b.ReportMetric(float64(u1-u0+s1-s0)/float64(b.N), "cpu-ns/pkt")
			b.ReportMetric(float64(s1-s0)/float64(b.N), "sys-ns/pkt")
			b.ReportMetric(float64(mallocs()-m0)/float64(b.N), "mallocs/pkt")
			b.ReportMetric(float64(brokerCPU()-k0)/float64(b.N), "broker-cpu-ns/pkt")
			b.ReportMetric(float64(ms.HeapSys-ms.HeapReleased)/(1<<20), "heap-MiB")
		})
	}
}

// franzNext produces the rig's frames through franzProducer, a record allocated a packet: next and
// flush as the rig's own.
func (r *publishRig) franzNext(tb testing.TB) (next, flush func()) {
	cl := r.franzProducer(tb)
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	ctx := context.Background()
	next = func() {
		d := r.frames[r.i%len(r.frames)]
		r.i++
		cl.Produce(ctx, packetrecord.Encode(r.meta(r.i, d), d), promise)
	}
	flush = func() {
		if err := cl.Flush(ctx); err != nil || failed.Load() > 0 {
			tb.Fatalf("flush: %v, %d failed", err, failed.Load())
		}
	}
	return next, flush
}

// BenchmarkPublishPaced is BenchmarkPublish at a live sensor's pace: 150,000 packets/s, in bursts
// of 4096 (about what a 1 MiB ring block holds of small packets), so between bursts the producer's
// goroutines go idle and wake as a live sensor's do, which costs more a packet than the saturated
// BenchmarkPublish (where every batch is full and nothing ever sleeps). "franz-go alone" produces
// records encoded before the clock starts (packetrecord.Encode) through franz-go with the same
// tuning: the floor of the per-record path the sensor replaced.
//
//	CAPFLEET_RUN=... go test -run '^$' -bench PublishPaced -benchtime 400000x ./sensor
func BenchmarkPublishPaced(b *testing.B) {
	const pace, burst = 150000, 4096
	paced := func(b *testing.B, next func(i int)) {
		u0, s0 := cpuTimes()
		start := time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			next(i)
			if i%burst == burst-1 {
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / pace)))
			}
		}
		b.StopTimer()
		u1, s1 := cpuTimes()
		b.ReportMetric(float64(u1-u0+s1-s0)/float64(b.N), "cpu-ns/pkt")
		b.ReportMetric(float64(s1-s0)/float64(b.N), "sys-ns/pkt")
	}
	for _, compression := range []string{"", "snappy", "none"} {
		name := "sensor"
		if compression != "" {
			name += "/" + compression
		}
		b.Run(name, func(b *testing.B) {
			r := newPublishRigConfig(b, smallPcap, func(c *Config) {
				if compression != "" {
					c.Compression = compression
				}
			})
			for range 20000 {
				r.next()
			}
			r.flush(b)
			paced(b, func(int) { r.next() })
			r.flush(b)
		})
	}
	b.Run("franz-go alone", func(b *testing.B) {
		r := newPublishRig(b, smallPcap)
		cl := r.franzProducer(b)
		var done atomic.Int64
		promise := func(*kgo.Record, error) { done.Add(1) }
		recs := make([]*kgo.Record, b.N+20000)
		for i := range recs {
			d := r.frames[i%len(r.frames)]
			recs[i] = packetrecord.Encode(r.meta(i, d), d)
		}
		ctx := context.Background()
		for _, rec := range recs[:20000] {
			cl.Produce(ctx, rec, promise)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		recs = recs[20000:]
		paced(b, func(i int) { cl.Produce(ctx, recs[i], promise) })
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	})
}
