package heartbeat

import (
	"capfleet.dev/capfleet/internal/testenv"

	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

func testConfig(pod string) Config {
	return Config{Topic: "capfleet.stats.test", Interval: 100 * time.Millisecond, Kind: KindCaptureSensor,
		Namespace: "ns", Name: "edge", UID: "u1", Pod: pod, Node: "node-" + pod}
}

// deadBroker is a loopback address where nothing listens.
func deadBroker(t *testing.T) string { return testenv.FreeAddr(t) }

func TestBrokerOutageNeverBlocksTheWorkload(t *testing.T) {
	kc := kafkaconn.Config{Brokers: []string{deadBroker(t)}}
	p, err := Dial(testConfig("sensor-a"), kc, func() Counters { return Counters{Packets: 1} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Far more beats than the client may queue: each returns at once, the
	// ones beyond the queue are shed and counted.
	const beats = 200
	for range beats {
		p.Beat(false)
	}
	// Shed beats are reported through the client's promise goroutine.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Lost < beats-queueBeats && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if lost := p.Stats().Lost; lost != beats-queueBeats {
		t.Errorf("%d beats lost of %d with a queue of %d", lost, beats, queueBeats)
	}
	if err := p.Stats().LastError; !errors.Is(err, kgo.ErrMaxBuffered) {
		t.Errorf("last error %v, want ErrMaxBuffered", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx) // Run gives up on the final beat after a bounded wait
	if p.Stats().Sent != 0 {
		t.Errorf("%d beats sent to no broker", p.Stats().Sent)
	}
}

func TestDisabledPublisherOnlyWaits(t *testing.T) {
	cfg := testConfig("sensor-a")
	cfg.Name = ""
	p, err := Dial(cfg, kafkaconn.Config{Brokers: []string{deadBroker(t)}}, func() Counters {
		t.Error("snapshot taken with heartbeats off")
		return Counters{}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)
	p.Beat(true)
	if s := p.Stats(); s.Sent+s.Lost != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestDialRefusesABadIdentity(t *testing.T) {
	cfg := testConfig("")
	if _, err := Dial(cfg, kafkaconn.Config{Brokers: []string{deadBroker(t)}}, nil, nil); err == nil {
		t.Error("a beat without pod name accepted")
	}
}

func TestConsumerStartFailsOnBadSecrets(t *testing.T) {
	c := &Consumer{Aggregator: NewAggregator(Options{}),
		Kafka: kafkaconn.Config{Brokers: []string{deadBroker(t)}, TLS: true, SecretDir: t.TempDir() + "/missing"}}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Start with a missing secret dir: %v", err)
	}
	if c.NeedLeaderElection() {
		t.Error("LeaderOnly unset, yet NeedLeaderElection")
	}
}
