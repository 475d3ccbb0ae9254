package heartbeat

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// pacedCounters counts as a workload sending rate packets/s of 500 bytes
// since start would: a function of the clock, so what was fed is known exactly.
func pacedCounters(start time.Time, rate float64) func() Counters {
	return func() Counters {
		n := uint64(rate * time.Since(start).Seconds())
		return Counters{Packets: n, Bytes: 500 * n, Drops: Drops{SensorQueue: n / 100}}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPublishersToAggregatorThroughKafka: pods publish through the real
// broker (one over TLS+SCRAM), the operator's consumer loop feeds an
// Aggregator, and the rates it derives are the rates that were fed.
func TestPublishersToAggregatorThroughKafka(t *testing.T) {
	plain := kafkatest.Plain(t)
	secure := kafkatest.Secure(t)
	topic := kafkatest.NewTopic(t, plain, 3)

	start := time.Now()
	rates := map[string]float64{"sensor-a": 5000, "sensor-b": 3000, "sensor-c": 2000}
	conns := map[string]kafkaconn.Config{"sensor-a": plain, "sensor-b": plain, "sensor-c": secure}
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	})
	for pod, rate := range rates {
		cfg := testConfig(pod)
		cfg.Topic, cfg.Interval = topic, 300*time.Millisecond
		p, err := Dial(cfg, conns[pod], pacedCounters(start, rate), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		stops[pod] = stop
		wg.Go(func() { p.Run(ctx) })
	}

	cl, err := plain.NewClient(ConsumerOptions(topic, time.Minute)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	agg := NewAggregator(Options{Window: 3 * time.Second, MaxSamples: 16})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agg.Consume(ctx, cl, 100*time.Millisecond, nil); close(done) }()
	defer func() { cancel(); <-done }()

	key := ResourceKey{Kind: KindCaptureSensor, Namespace: "ns", Name: "edge", UID: "u1"}
	spans := func(s Summary) bool { // every pod's window is full
		return s.PodsLive == 3 && s.LastHeartbeat.Sub(start) > 4*time.Second
	}
	waitFor(t, "a full window from three pods", func() bool { s, ok := agg.Summary(key); return ok && spans(s) })
	s, _ := agg.Summary(key)
	within(t, "packets/s of the resource", s.Rates.Packets, 10000)
	within(t, "bytes/s of the resource", s.Rates.Bytes, 5_000_000)
	within(t, "queue drops/s", s.Rates.Drops.SensorQueue, 100)
	for _, n := range s.Nodes {
		within(t, "packets/s of "+n.Node, n.Rates.Packets, rates["sensor-"+n.Node[len("node-sensor-"):]])
	}

	// A pod that stops says so; its rate leaves the total, its counts stay.
	stops["sensor-c"]()
	waitFor(t, "the final beat of sensor-c", func() bool { s, _ := agg.Summary(key); return s.PodsExited == 1 })
	s, _ = agg.Summary(key)
	within(t, "packets/s without sensor-c", s.Rates.Packets, 8000)
	if exited := s.Nodes[len(s.Nodes)-1]; !exited.Exited || exited.Node != "node-sensor-c" {
		t.Errorf("last node %+v, want sensor-c's, exited", exited)
	}

	// Something that is not a beat on the stats topic is counted, not fatal.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bad record to be counted", func() bool { return agg.Stats().BadRecords == 1 })
	if changed := agg.TakeChanged(); len(changed) != 1 || changed[0] != key {
		t.Errorf("changed %v", changed)
	}
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.05*want {
		t.Errorf("%s: %.1f, want %.0f ±5%%", what, got, want)
	} else {
		t.Logf("%s: %.1f (fed %.0f, %+.3f%%)", what, got, want, 100*(got-want)/want)
	}
}

// TestOperatorRestartReadsTheWindowBack: a consumer started after the
// beats were sent reads the last lookback of the topic back.
func TestOperatorRestartReadsTheWindowBack(t *testing.T) {
	plain := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, plain, 1)
	cfg := testConfig("sensor-a")
	cfg.Topic, cfg.Interval = topic, 200*time.Millisecond
	start := time.Now()
	p, err := Dial(cfg, plain, pacedCounters(start, 1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // beats while no consumer runs
		if i > 0 {
			time.Sleep(cfg.Interval)
		}
		p.Beat(false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx) // one beat, then the final one; flushes and closes
	if s := p.Stats(); s.Sent != 12 || s.Lost != 0 {
		t.Fatalf("publisher %+v, want 12 sent", s)
	}

	cl, err := plain.NewClient(ConsumerOptions(topic, time.Minute)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	agg := NewAggregator(Options{})
	cctx, ccancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agg.Consume(cctx, cl, time.Second, nil); close(done) }()
	defer func() { ccancel(); <-done }()
	waitFor(t, "12 beats read back", func() bool { return agg.Stats().Beats == 12 })
	s, _ := agg.Summary(ResourceKey{Kind: KindCaptureSensor, Namespace: "ns", Name: "edge", UID: "u1"})
	within(t, "packets counted by the last beat", float64(s.Totals.Packets), 1000*s.LastHeartbeat.Sub(start).Seconds())
	if s.PodsExited != 1 || s.Rates.Packets != 0 {
		t.Errorf("%d pods exited, rate %v: want the pod exited, adding no rate", s.PodsExited, s.Rates.Packets)
	}
}

// The Consumer runnable tells OnChange which resources have new figures.
func TestConsumerRunnableReportsChangedResources(t *testing.T) {
	plain := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, plain, 2)
	sensorCfg, replayCfg := testConfig("sensor-a"), testConfig("rj-1")
	replayCfg.Kind, replayCfg.Name = KindReplayJob, "rj"
	for _, cfg := range []Config{sensorCfg, replayCfg} {
		cfg.Topic = topic
		p, err := Dial(cfg, plain, func() Counters { return Counters{Packets: 1} }, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.Run(ctx) // one beat and the final one
	}

	agg := NewAggregator(Options{})
	changed := make(chan ResourceKey, 16)
	c := &Consumer{Aggregator: agg, Kafka: plain, Topic: topic, OnChange: func(k ResourceKey) { changed <- k }}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- c.Start(ctx) }()
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case k := <-changed:
			seen[k.Kind+"/"+k.Name] = true
		case <-time.After(time.Minute):
			t.Fatalf("changed resources seen: %v", seen)
		}
	}
	if !seen["CaptureSensor/edge"] || !seen["ReplayJob/rj"] {
		t.Errorf("seen %v", seen)
	}
	cancel()
	if err := <-started; err != nil {
		t.Errorf("Start: %v", err)
	}
	if st := agg.Stats(); st.Beats != 4 || st.Resources != 2 {
		t.Errorf("aggregator %+v", st)
	}
}
