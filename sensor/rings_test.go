package sensor

import (
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
)

// With a fanout group the interface gets one ring per CPU and the kernel
// spreads flows across them; together they still capture every packet once.
func TestCaptureWithFanout(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("one CPU: the fanout group holds a single ring")
	}
	captureWithFanout(t, 0)
}

// --fanout-workers sets the rings of the group, here more than the CPUs: each ring counts its own
// packets, the interface's counters are their sum, the kernel's flow hash gives each ring a share,
// and every packet is captured and published once.
func TestCaptureWithFanoutWorkers(t *testing.T) {
	const workers = 3
	s := captureWithFanout(t, workers)
	for iface, ws := range s.WorkerCounters() {
		if len(ws) != workers {
			t.Fatalf("%s: %d rings, want %d", iface, len(ws), workers)
		}
		var sum Counters
		busy := 0
		for _, w := range ws {
			sum = sum.Add(w)
			if w.PacketsCaptured > 0 {
				busy++
			}
		}
		if total := s.InterfaceCounters()[iface]; sum != total {
			t.Fatalf("%s: rings sum to %+v, the interface says %+v", iface, sum, total)
		}
		if busy < 2 {
			t.Fatalf("%s: the flows all went to %d ring(s): %+v", iface, busy, ws)
		}
		t.Logf("%s: packets captured by ring: %v", iface, func() (n []uint64) {
			for _, w := range ws {
				n = append(n, w.PacketsCaptured)
			}
			return n
		}())
	}
}

func captureWithFanout(t *testing.T, workers int) *running {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	want, _ := readPcap(t, file)

	cfg := e2eConfig(n, kafka, topic)
	cfg.FanoutGroup = 4242
	cfg.FanoutWorkers = workers
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
	return s
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

// A ring far too small for the traffic overflows: what the kernel could not
// put in it shows up as kernel drops, and captured plus dropped is exactly
// what was sent. The snap length cuts what is kept, not the original length.
func TestKernelDropsAreCounted(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	all, _ := readPcap(t, file)
	const snaplen = 128

	cfg := e2eConfig(n, kafka, topic)
	cfg.SnapLen = snaplen
	cfg.RingBlockSizeKB = 4 // one page: a few dozen packets
	cfg.RingBlocks = 1
	s := startSensor(t, cfg)
	sent := 0
	// Top speed into one page overflows at once in practice; a few rounds
	// make sure of it without making the test depend on timing to pass.
	for round := 0; round < 5 && s.Counters().KernelDrops == 0; round++ {
		out := n.run(t, "tcpreplay", "-i", n.Tx, "--topspeed", file)
		if m := tcpreplayOK.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(len(all)) {
			t.Fatalf("tcpreplay:\n%s", out)
		}
		sent += len(all)
		waitFor(t, "every sent packet captured or dropped", func() bool {
			s.pollStats(s.rings)
			c := s.Counters()
			return c.PacketsCaptured+c.KernelDrops >= uint64(sent) && c.Buffered() == 0
		})
	}
	s.stop(t)
	c := s.Counters()
	t.Logf("sent %d: %+v", sent, c)
	if c.KernelDrops == 0 {
		t.Fatal("a one-page ring never overflowed")
	}
	if c.PacketsCaptured+c.KernelDrops != uint64(sent) {
		t.Errorf("captured %d + kernel drops %d != sent %d", c.PacketsCaptured, c.KernelDrops, sent)
	}
	if c.PacketsPublished != c.PacketsCaptured || c.BufferDrops+c.ProduceFailures+c.InterfaceDrops != 0 {
		t.Errorf("what was captured must all be published: %+v", c)
	}
	prefixes := map[string]int{}
	for _, f := range all {
		prefixes[string(f[:min(len(f), snaplen)])] += sent / len(all)
	}
	recs := consumeAll(t, kafka, topic)
	for _, r := range recs {
		m, v, err := packetrecord.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if prefixes[string(v)] == 0 {
			t.Fatalf("record of %d bytes (origlen %d) is no %d-byte prefix of a sent frame", len(v), m.OrigLen, snaplen)
		}
		prefixes[string(v)]--
		if len(v) > snaplen || m.OrigLen < len(v) {
			t.Fatalf("record of %d bytes, origlen %d, snaplen %d", len(v), m.OrigLen, snaplen)
		}
	}
}

// The interface is promiscuous while the sensor captures (so a mirror port's
// traffic for other hosts is seen) and back to normal once it stops.
func TestPromiscuousWhileCapturing(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	promiscuity := func() string {
		out := n.run(t, "ip", "-d", "link", "show", n.Rx)
		m := regexp.MustCompile(`promiscuity (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no promiscuity in:\n%s", out)
		}
		return m[1]
	}
	if p := promiscuity(); p != "0" {
		t.Fatalf("promiscuity %s before the sensor", p)
	}
	s := startSensor(t, e2eConfig(n, kafka, topic))
	if p := promiscuity(); p != "1" {
		t.Errorf("promiscuity %s while capturing", p)
	}
	s.stop(t)
	if p := promiscuity(); p != "0" {
		t.Errorf("promiscuity %s after the sensor stopped", p)
	}
}

// An interface deleted under the sensor fails /healthz, so the liveness probe
// restarts the pod, which finds whatever replaces it; the sensor itself keeps
// running and flushing meanwhile.
func TestVanishedInterfaceFailsHealth(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	s := startSensor(t, e2eConfig(n, kafka, topic))
	if got := httpGet(t, s.addrs[0], "/healthz"); got != "ok\n" {
		t.Fatalf("/healthz %q", got)
	}
	n.run(t, "ip", "link", "del", n.Tx) // takes its peer, the capture interface, along
	waitFor(t, "the sensor noticing", func() bool { return s.Healthy() != nil })
	resp, err := http.Get("http://" + s.addrs[0] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `interface "cfrx" vanished`) {
		t.Fatalf("/healthz: %s %q", resp.Status, body)
	}
	select {
	case err := <-s.done:
		t.Fatalf("the sensor exited: %v", err)
	default:
	}
}
