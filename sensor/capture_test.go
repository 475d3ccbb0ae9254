package sensor

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
)

// A real capture with both IPv4 and IPv6, TCP and UDP, no VLAN tags and
// frames up to 37 kB (1723 packets; nDPI's test suite, see MANIFEST.tsv).
const e2ePcap = "ndpi/1kxun.pcap"

const e2ePartitions = 4

// running is a sensor started in-process by a test.
type running struct {
	*Sensor
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startSensor(t *testing.T, cfg Config) *running {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Sensor: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	deadline := time.After(60 * time.Second)
	for !s.Ready() {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("sensor stopped before it was ready: %v", err)
		case <-deadline:
			t.Fatal("sensor not ready after 60s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return r
}

// stop ends the capture and waits for the flush; Run must not have failed.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("sensor Run: %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("sensor did not stop within 2 minutes")
		}
	})
}

// waitFor polls cond; the deadline only guards against a hang, it is no
// measure of speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func e2eConfig(n vethNS, kafka kafkaconn.Config, topic string) Config {
	cfg := DefaultConfig()
	cfg.Interfaces = []string{n.Rx}
	cfg.NetNS = n.Path
	cfg.Topic = topic
	cfg.Kafka = kafka
	cfg.Node = "test-node"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.HealthAddr = "127.0.0.1:0"
	cfg.RingBlocks = 16
	return cfg
}

// checkRecords verifies each record's format against what the sensor saw:
// Metron key equal to the nanosecond header, headers, and the flow partition.
func checkRecords(t *testing.T, recs []*kgo.Record, iface string) {
	t.Helper()
	for _, r := range recs {
		m, frame, err := packetrecord.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := binary.BigEndian.Uint64(r.Key), uint64(m.Timestamp.UnixNano()/1000); got != want {
			t.Fatalf("record %d@%d: key %d µs, ts_ns header says %d µs", r.Partition, r.Offset, got, want)
		}
		if m.Node != "test-node" || m.Interface != iface || m.LinkType != 1 || m.OrigLen != len(frame) {
			t.Fatalf("record %d@%d: meta %+v for a %d-byte frame", r.Partition, r.Offset, m, len(frame))
		}
		if want := int32(packetrecord.FlowHash(frame, m.LinkType) % e2ePartitions); r.Partition != want {
			t.Fatalf("record %d@%d: in partition %d, its flow hashes to %d", r.Partition, r.Offset, r.Partition, want)
		}
	}
}

func frames(recs []*kgo.Record) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Value
	}
	return out
}

// The topic holds exactly the packets tcpreplay put on the wire, byte for
// byte, and nothing was dropped anywhere.
func TestCaptureEndToEnd(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	want, _ := readPcap(t, file)

	s := startSensor(t, e2eConfig(n, kafka, topic))
	if got := httpGet(t, s.addrs[0], "/readyz"); got != "ready\n" {
		t.Fatalf("/readyz: %q", got)
	}
	sent := n.replay(t, file, 20000)
	if sent != len(want) {
		t.Fatalf("tcpreplay sent %d packets, the file holds %d", sent, len(want))
	}
	waitFor(t, "every packet captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
	})
	metrics := httpGet(t, s.addrs[0], "/metrics")
	s.stop(t)

	c := s.Counters()
	t.Logf("counters: %+v", c)
	if c.PacketsCaptured != uint64(sent) || c.PacketsPublished != uint64(sent) {
		t.Errorf("captured %d and published %d packets, tcpreplay sent %d", c.PacketsCaptured, c.PacketsPublished, sent)
	}
	if c.KernelDrops+c.InterfaceDrops+c.BufferDrops+c.ProduceFailures != 0 {
		t.Errorf("drops: %+v", c)
	}
	for _, line := range []string{
		fmt.Sprintf(`capfleet_sensor_packets_total{interface=%q,outcome="published"} %d`, n.Rx, sent),
		fmt.Sprintf(`capfleet_sensor_drops_total{cause="kernel",interface=%q} 0`, n.Rx),
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	recs := consumeAll(t, kafka, topic)
	if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
		t.Fatalf("topic %s vs %s: %s", topic, file, d)
	}
	checkRecords(t, recs, n.Rx)
}

// With a filter, the topic holds exactly what tcpdump selects from the file.
func TestCaptureFilterMatchesTcpdump(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	const expr = "(udp and not port 53) or ip6"
	want := tcpdumpSelect(t, file, expr)
	all, _ := readPcap(t, file)
	if len(want) == 0 || len(want) == len(all) {
		t.Fatalf("filter %q selects %d of %d packets: it must select some, not all", expr, len(want), len(all))
	}

	cfg := e2eConfig(n, kafka, topic)
	cfg.Filter = expr
	s := startSensor(t, cfg)
	n.replay(t, file, 20000)
	waitFor(t, "the selected packets captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(len(want)) && c.Buffered() == 0
	})
	s.stop(t)

	c := s.Counters()
	if c.PacketsCaptured != uint64(len(want)) || c.PacketsPublished != uint64(len(want)) {
		t.Errorf("captured %d, published %d; tcpdump selects %d", c.PacketsCaptured, c.PacketsPublished, len(want))
	}
	if c.KernelDrops+c.InterfaceDrops+c.BufferDrops+c.ProduceFailures != 0 {
		t.Errorf("drops: %+v", c)
	}
	recs := consumeAll(t, kafka, topic)
	if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
		t.Fatalf("topic vs tcpdump %q: %s", expr, d)
	}
	checkRecords(t, recs, n.Rx)
	t.Logf("filter %q: %d of %d packets", expr, len(want), len(all))
}

func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

// `vlan` tests the tag the kernel keeps out of the frame: compiled on a live
// handle, the kernel program selects what tcpdump selects from the file.
func TestCaptureFilterVLAN(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	file := sharedPcap(t, "zeek/mixed-vlan-mpls.pcap") // 14 of 47 frames tagged 4093
	all, _ := readPcap(t, file)
	for _, expr := range []string{"vlan", "not vlan", "vlan 4093 and tcp port 80"} {
		t.Run(expr, func(t *testing.T) {
			want := tcpdumpSelect(t, file, expr)
			if len(want) == 0 || len(want) == len(all) {
				t.Fatalf("%q selects %d of %d frames: it must select some, not all", expr, len(want), len(all))
			}
			topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
			cfg := e2eConfig(n, kafka, topic)
			cfg.Filter = expr
			s := startSensor(t, cfg)
			sent := n.replay(t, file, 1000)
			waitFor(t, "the selected packets captured and published", func() bool {
				c := s.Counters()
				return c.PacketsCaptured >= uint64(len(want)) && c.Buffered() == 0
			})
			s.stop(t)
			c := s.Counters()
			if c.PacketsCaptured != uint64(len(want)) || c.PacketsPublished != uint64(len(want)) {
				t.Errorf("captured %d, published %d of %d sent; tcpdump selects %d", c.PacketsCaptured, c.PacketsPublished, sent, len(want))
			}
			recs := consumeAll(t, kafka, topic)
			if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
				t.Fatalf("topic vs tcpdump %q: %s", expr, d)
			}
		})
	}
}
