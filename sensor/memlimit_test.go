package sensor

import (
	"context"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/kafkatest"
)

func TestFitRings(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name          string
		share         int64
		rings, blocks int
		auto          bool
		want          int
		refused       bool
		blockSize     int
	}{
		{name: "no limit known", share: -1, rings: 8, blocks: 64, want: 64},
		{name: "fits", share: 64 * mib, rings: 4, blocks: 16, want: 16},
		{name: "auto shrinks to what fits", share: 40 * mib, rings: 4, blocks: 16, auto: true, want: 10},
		{name: "auto below two blocks is refused", share: 4 * mib, rings: 4, blocks: 16, auto: true, refused: true},
		{name: "a given size that does not fit is refused", share: 40 * mib, rings: 4, blocks: 16, refused: true},
		{name: "a limit below the reserve leaves nothing", share: 0, rings: 1, blocks: 8, auto: true, refused: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := fitRings(c.share, c.rings, mib, c.blocks, c.auto)
			if c.refused {
				if err == nil || !strings.Contains(err.Error(), "memory limit") {
					t.Fatalf("got %d blocks, %v; want a refusal naming the memory limit", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %d, %v; want %d", got, err, c.want)
			}
			if c.share >= 0 && int64(got*c.rings)*mib > c.share {
				t.Fatalf("%d blocks × %d rings exceed the share of %d MiB", got, c.rings, c.share/mib)
			}
		})
	}
}

func TestMemoryLimitFromEnv(t *testing.T) {
	t.Setenv(MemoryLimitEnv, "805306368")
	if got := DefaultConfig().MemoryLimit; got != 805306368 {
		t.Fatalf("MemoryLimit %d from $%s", got, MemoryLimitEnv)
	}
	t.Setenv(MemoryLimitEnv, "")
	if got := DefaultConfig().MemoryLimit; got != 0 {
		t.Fatalf("MemoryLimit %d with $%s unset", got, MemoryLimitEnv)
	}
}

// Rings of the spec's size that the pod's memory limit cannot hold are refused at start with what
// would fit, before a single one is mapped (the kernel would charge them to the pod, whose OOM kill
// says nothing of why).
func TestRingsBeyondTheMemoryLimitAreRefused(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	cfg := e2eConfig(n, kafka, kafkatest.NewTopic(t, kafka, e2ePartitions))
	cfg.FanoutGroup, cfg.FanoutWorkers, cfg.RingBlocks = 4243, 4, 32 // 4 rings of 32 MiB
	cfg.MemoryLimit = 256 << 20                                      // 96 MiB left for rings
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "need 128 MiB") || !strings.Contains(err.Error(), "96 MiB") {
		t.Fatalf("Run: %v; want the rings refused, 128 MiB needed and 96 MiB left", err)
	}
	t.Log(err)
}

// Rings sized from the interface shrink to fit the limit, capture goes on with them, and Go's heap is
// held under what they leave.
func TestAutoRingsShrinkToTheMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	debug.SetMemoryLimit(math.MaxInt64)
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	cfg := e2eConfig(n, kafka, topic)
	cfg.FanoutGroup, cfg.FanoutWorkers, cfg.RingBlocks = 4244, 4, 0
	cfg.MemoryLimit = int64(cfg.BufferMB)<<20 + processReserve + 16<<20 // 16 MiB for 4 rings
	s := startSensor(t, cfg)
	if s.ringBytes != 16<<20 {
		t.Fatalf("rings take %d MiB, want the 16 MiB the limit leaves", s.ringBytes>>20)
	}
	if got, want := debug.SetMemoryLimit(-1), goMemoryLimit(cfg.MemoryLimit, s.ringBytes); got != want {
		t.Fatalf("Go memory limit %d MiB, want %d MiB", got>>20, want>>20)
	}
	file := sharedPcap(t, e2ePcap)
	want, _ := readPcap(t, file)
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
	})
	s.stop(t)
	if c := s.Counters(); c.PacketsPublished != uint64(len(want)) || c.KernelDrops != 0 {
		t.Fatalf("want %d published and no kernel drops with the smaller rings: %+v", len(want), c)
	}
}
