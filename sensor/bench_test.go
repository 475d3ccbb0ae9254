package sensor

import (
	"context"
	"strconv"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// BenchmarkCaptureToKafka replays the e2e capture onto the veth at several
// paces (tcpreplay --pps, then --topspeed), 20 loops each, while the sensor
// publishes to the real broker. Reported per run: the end-to-end rate (packets
// captured over the time from the first send until Kafka acknowledged the
// last) and every drop counter, so the pace where drops begin shows.
//
//	go test -run '^$' -bench CaptureToKafka -benchtime 1x ./sensor
func BenchmarkCaptureToKafka(b *testing.B) {
	const loops = 20
	file := sharedPcap(b, e2ePcap)
	all, _ := readPcap(b, file)
	for _, pace := range []string{"20000", "50000", "100000", "top"} {
		b.Run("pps="+pace, func(b *testing.B) {
			n := newVethNS(b)
			kafka := kafkatest.Plain(b)
			topic := kafkatest.NewTopic(b, kafka, e2ePartitions)
			cfg := e2eConfig(n, kafka, topic)
			cfg.RingBlocks = DefaultConfig().RingBlocks // sized from the veth's speed, as deployed
			s, err := New(cfg, testLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			r := startBench(b, s)
			args := []string{"tcpreplay", "-i", n.Tx, "--loop", strconv.Itoa(loops)}
			if pace == "top" {
				args = append(args, "--topspeed")
			} else {
				args = append(args, "--pps", pace)
			}
			args = append(args, file)
			for b.Loop() {
				before := s.Counters()
				start := time.Now()
				n.run(b, args...)
				want := before.PacketsCaptured + uint64(loops*len(all))
				deadline := time.Now().Add(2 * time.Minute)
				for c := s.Counters(); c.PacketsCaptured+c.KernelDrops+c.InterfaceDrops < want || c.Buffered() > 0; c = s.Counters() {
					if time.Now().After(deadline) {
						b.Fatalf("stalled: %+v", c)
					}
					time.Sleep(5 * time.Millisecond)
				}
				elapsed := time.Since(start).Seconds()
				c := s.Counters()
				got := c.PacketsCaptured - before.PacketsCaptured
				b.ReportMetric(float64(got)/elapsed, "e2e_pps")
				b.ReportMetric(float64(c.BytesCaptured-before.BytesCaptured)*8/elapsed/1e6, "e2e_Mbps")
				b.ReportMetric(float64(c.KernelDrops-before.KernelDrops), "kernel_drops")
				b.ReportMetric(float64(c.InterfaceDrops-before.InterfaceDrops), "iface_drops")
				b.ReportMetric(float64(c.BufferDrops-before.BufferDrops), "buffer_drops")
				b.ReportMetric(float64(c.ProduceFailures-before.ProduceFailures), "produce_failures")
			}
			r()
		})
	}
}

func startBench(b *testing.B, s *Sensor) (stop func()) {
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.Run(ctx) }()
	for !s.Ready() {
		select {
		case err := <-done:
			b.Fatalf("sensor stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// BenchmarkCaptureOnly is the capture path: ring, VLAN restore and records
// into batches, with a buffer that holds everything, so Kafka sets no pace.
// tcpreplay --topspeed, 20 loops.
//
//	go test -run '^$' -bench CaptureOnly -benchtime 1x ./sensor
func BenchmarkCaptureOnly(b *testing.B) {
	const loops = 20
	file := sharedPcap(b, e2ePcap)
	all, _ := readPcap(b, file)
	n := newVethNS(b)
	kafka := kafkatest.Plain(b)
	topic := kafkatest.NewTopic(b, kafka, e2ePartitions)
	cfg := e2eConfig(n, kafka, topic)
	cfg.RingBlocks = DefaultConfig().RingBlocks
	cfg.BufferPackets = 10 * loops * len(all)
	cfg.BufferMB = 4096
	cfg.FlushTimeout = 1 // nanosecond: what is held is not the point, it fails at stop
	s, err := New(cfg, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	stop := startBench(b, s)
	defer stop()
	for b.Loop() {
		before := s.Counters()
		start := time.Now()
		n.run(b, "tcpreplay", "-i", n.Tx, "--topspeed", "--loop", strconv.Itoa(loops), file)
		want := before.PacketsCaptured + before.KernelDrops + uint64(loops*len(all))
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s.pollStats(s.rings)
			c := s.Counters()
			if c.PacketsCaptured+c.KernelDrops+c.InterfaceDrops >= want {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("stalled: %+v", c)
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start).Seconds()
		c := s.Counters()
		b.ReportMetric(float64(c.PacketsCaptured-before.PacketsCaptured)/elapsed, "captured_pps")
		b.ReportMetric(float64(c.BytesCaptured-before.BytesCaptured)*8/elapsed/1e6, "captured_Mbps")
		b.ReportMetric(float64(c.KernelDrops-before.KernelDrops), "kernel_drops")
		b.ReportMetric(float64(c.InterfaceDrops-before.InterfaceDrops), "iface_drops")
	}
}
