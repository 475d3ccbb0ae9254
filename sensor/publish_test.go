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
	return newPublishRigConfig(tb, pcap, func(c *Config) {
		c.BufferPackets = buffer
		c.kafkaOpts = opts
	})
}

// newPublishRigConfig is the rig with the sensor's default config changed by set.
func newPublishRigConfig(tb testing.TB, pcap string, set func(*Config)) *publishRig {
	kafka := kafkatest.Plain(tb)
	topic := kafkatest.NewTopic(tb, kafka, e2ePartitions)
	frames, lt := readPcap(tb, sharedPcap(tb, pcap))
	cfg := DefaultConfig()
	cfg.Kafka, cfg.Topic, cfg.Node = kafka, topic, "bench"
	set(&cfg)
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
		name        string
		compression string // --compression; "" the default
		opts        []kgo.Opt
		buffer      int
	}{
		{"default", "", nil, 0},  // the sensor's own: lz4, 20 ms linger, 1 MiB batches
		{"unpooled", "", nil, 0}, // the same, with a record allocated per packet (packetrecord.Encode), as before the pool
		// Codecs by --compression, as a user would choose them (a kgo option would lose to the lz4
		// compressor that PacketsProducerTuning installs for lz4).
		{"snappy", "snappy", nil, 0},
		{"zstd", "zstd", nil, 0},
		{"none", "none", nil, 0},
		{"linger=5ms", "", []kgo.Opt{kgo.ProducerLinger(5 * time.Millisecond)}, 0},
		{"linger=50ms", "", []kgo.Opt{kgo.ProducerLinger(50 * time.Millisecond)}, 0},
		{"batch=256KiB", "", []kgo.Opt{kgo.ProducerBatchMaxBytes(256 << 10)}, 0},
		{"buffer=16384", "", nil, 16384},
		{"buffer=100000", "", nil, 100000},
	} {
		b.Run(c.name, func(b *testing.B) {
			buffer := c.buffer
			if buffer == 0 {
				buffer = DefaultConfig().BufferPackets
			}
			r := newPublishRigConfig(b, smallPcap, func(cfg *Config) {
				cfg.BufferPackets, cfg.kafkaOpts = buffer, c.opts
				if c.compression != "" {
					cfg.Compression = c.compression
				}
			})
			for range 20000 {
				r.next()
			}
			r.flush(b)
			b.ReportAllocs()
			u0, s0 := cpuTimes()
			m0, k0 := mallocs(), brokerCPU()
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
			u1, s1 := cpuTimes()
			b.ReportMetric(float64(u1-u0+s1-s0)/float64(b.N), "cpu-ns/pkt")
			b.ReportMetric(float64(s1-s0)/float64(b.N), "sys-ns/pkt")
			b.ReportMetric(float64(mallocs()-m0)/float64(b.N), "mallocs/pkt")
			b.ReportMetric(float64(brokerCPU()-k0)/float64(b.N), "broker-cpu-ns/pkt")
			b.ReportMetric(float64(ms.HeapSys-ms.HeapReleased)/(1<<20), "heap-MiB")
		})
	}
}

// BenchmarkPublishPaced is BenchmarkPublish at a live sensor's pace: 150,000 packets/s, in bursts
// of 4096 (about what a 1 MiB ring block holds of small packets), so between bursts the producer's
// goroutines go idle and wake as a live sensor's do, which costs more a packet than the saturated
// BenchmarkPublish (where every batch is full and nothing ever sleeps). "franz-go alone" produces
// records encoded before the clock starts (packetrecord.Encode), with the same client and tuning:
// what the sensor adds to franz-go's own cost.
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
		var done atomic.Int64
		promise := func(*kgo.Record, error) { done.Add(1) }
		recs := make([]*kgo.Record, b.N+20000)
		for i := range recs {
			d := r.frames[i%len(r.frames)]
			m := packetrecord.Meta{Timestamp: time.Unix(1700000000, int64(i)), Node: r.f.node, Interface: r.f.link.Name, LinkType: r.f.link.LinkType, OrigLen: len(d)}
			recs[i] = packetrecord.Encode(m, d)
		}
		ctx := context.Background()
		for _, rec := range recs[:20000] {
			r.pub.cl.Produce(ctx, rec, promise)
		}
		if err := r.pub.cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		recs = recs[20000:]
		paced(b, func(i int) { r.pub.cl.Produce(ctx, recs[i], promise) })
		if err := r.pub.cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	})
}
