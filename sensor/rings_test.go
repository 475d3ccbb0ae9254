package sensor

import (
	"runtime"
	"testing"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// With a fanout group the interface gets one ring per CPU and the kernel
// spreads flows across them; together they still capture every packet once.
func TestCaptureWithFanout(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("one CPU: the fanout group holds a single ring")
	}
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	want, _ := readPcap(t, file)

	cfg := e2eConfig(n, kafka, topic)
	cfg.FanoutGroup = 4242
	s := startSensor(t, cfg)
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
	})
	s.stop(t)
	c := s.Counters()
	if c.PacketsCaptured != uint64(len(want)) || c.PacketsPublished != uint64(len(want)) ||
		c.KernelDrops+c.InterfaceDrops+c.BufferDrops+c.ProduceFailures != 0 {
		t.Errorf("want %d captured and published, no drops: %+v", len(want), c)
	}
	recs := consumeAll(t, kafka, topic)
	if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
		t.Fatalf("topic vs %s: %s", file, d)
	}
}

// An interface that goes down and up again does not end the sensor, and
// capture resumes on it.
func TestCaptureSurvivesLinkFlap(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	want, _ := readPcap(t, file)

	s := startSensor(t, e2eConfig(n, kafka, topic))
	n.run(t, "ip", "link", "set", n.Rx, "down")
	waitFor(t, "the ring noticing the interface went down", func() bool { return s.rings[0].pollErrors.Load() > 0 })
	n.run(t, "ip", "link", "set", n.Rx, "up")
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet after the flap captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
	})
	s.stop(t)
	// The flap leaves ENETDOWN pending on the socket; once read, later polls
	// are clean again instead of failing every time the ring is empty.
	for _, r := range s.rings {
		if e := r.pollErrors.Load(); e > 2 {
			t.Errorf("%d failed polls on one ring after a single flap", e)
		}
	}
	if c := s.Counters(); c.PacketsPublished != uint64(len(want)) {
		t.Errorf("published %d of %d: %+v", c.PacketsPublished, len(want), c)
	}
	recs := consumeAll(t, kafka, topic)
	if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
		t.Fatalf("topic vs %s: %s", file, d)
	}
}
