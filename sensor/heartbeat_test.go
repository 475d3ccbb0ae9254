package sensor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkatest"
)

func TestHeartbeatCountersMapEveryCause(t *testing.T) {
	got := heartbeatCounters(Counters{PacketsCaptured: 100, BytesCaptured: 9000, PacketsSampledOut: 10,
		PacketsPublished: 80, BytesPublished: 7000, KernelDrops: 1, InterfaceDrops: 2, BufferDrops: 3, ProduceFailures: 4})
	want := heartbeat.Counters{Packets: 100, Bytes: 9000, Filtered: 10, RecordsOut: 80,
		Drops: heartbeat.Drops{KernelRing: 1, Interface: 2, SensorQueue: 3, KafkaProduce: 4}}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// `capfleet sensor` with a resource identity beats to the stats topic, and
// its final beat counts every packet tcpreplay sent.
func TestSensorCommandPublishesHeartbeats(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	stats := kafkatest.NewTopic(t, kafka, 1)
	file := sharedPcap(t, e2ePcap)

	t.Setenv("NODE_NAME", "hb-node") // read when the command is made
	t.Setenv("POD_NAME", "edge-abcde")
	cmd := NewCommand()
	cmd.SetArgs([]string{"--interfaces", n.Rx, "--netns", n.Path, "--topic", topic,
		"--kafka-brokers", kafka.Brokers[0], "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--ring-blocks", "16", "--stats-topic", stats, "--heartbeat-interval", "200ms",
		"--resource-namespace", "capture", "--resource-name", "edge", "--resource-uid", "u1"})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	cmdErr := make(chan error, 1)
	go func() { cmdErr <- cmd.ExecuteContext(ctx) }()

	agg := heartbeat.NewAggregator(heartbeat.Options{})
	cl, err := kafka.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cstop := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() { agg.Consume(cctx, cl, time.Second, nil); close(consumed) }()
	defer func() { cstop(); <-consumed }()
	key := heartbeat.ResourceKey{Kind: heartbeat.KindCaptureSensor, Namespace: "capture", Name: "edge", UID: "u1"}
	summary := func() heartbeat.Summary { s, _ := agg.Summary(key); return s }

	waitFor(t, "the first heartbeat", func() bool { return summary().PodsLive == 1 })
	sent := n.replay(t, file, 20000)
	waitFor(t, "a heartbeat counting every packet", func() bool { return summary().Totals.RecordsOut >= uint64(sent) })
	stop()
	if err := <-cmdErr; err != nil {
		t.Fatalf("sensor: %v", err)
	}
	waitFor(t, "the final heartbeat", func() bool { return summary().PodsExited == 1 })

	s := summary()
	if s.Totals.Packets != uint64(sent) || s.Totals.RecordsOut != uint64(sent) || s.Totals.Drops.Total() != 0 {
		t.Errorf("final beat %+v, tcpreplay sent %d", s.Totals, sent)
	}
	if len(s.Nodes) != 1 || s.Nodes[0].Node != "hb-node" {
		t.Errorf("nodes %+v", s.Nodes)
	}
	if st := agg.Stats(); st.BadRecords != 0 || st.Beats < 3 {
		t.Errorf("aggregator %+v", st)
	}
}

// While the broker is away for the packets, the heartbeat (its own client,
// its own connection) still reports, and the packets shed by the full buffer
// show under sensor_queue; the sensor's own counters are the oracle.
func TestHeartbeatReportsQueueDropsDuringAnOutage(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	stats := kafkatest.NewTopic(t, kafka, 1)
	file := sharedPcap(t, e2ePcap)

	gate := &brokerGate{}
	cfg := e2eConfig(n, kafka, topic)
	cfg.BufferPackets = 300
	cfg.kafkaOpts = []kgo.Opt{kgo.Dialer(gate.dial)}
	s := startSensor(t, cfg)
	hb := heartbeat.Config{Topic: stats, Interval: 200 * time.Millisecond, Kind: heartbeat.KindCaptureSensor,
		Namespace: "capture", Name: "edge", UID: "u1", Pod: "edge-abcde"}
	stopBeats, err := startHeartbeat(hb, cfg, s.Sensor, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stopBeats()

	agg := heartbeat.NewAggregator(heartbeat.Options{})
	cl, err := kafka.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() { agg.Consume(ctx, cl, time.Second, nil); close(consumed) }()
	defer func() { cancel(); <-consumed }()
	key := heartbeat.ResourceKey{Kind: heartbeat.KindCaptureSensor, Namespace: "capture", Name: "edge", UID: "u1"}
	summary := func() heartbeat.Summary { s, _ := agg.Summary(key); return s }

	gate.cut()
	sent := n.replay(t, file, 20000)
	// Shed packets are counted by the producer's promise goroutine: wait
	// until all but what the buffer holds are accounted for.
	waitFor(t, "every packet captured during the outage, and those beyond the buffer shed", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() <= uint64(cfg.BufferPackets)
	})
	want := s.Counters()
	if want.BufferDrops == 0 {
		t.Fatalf("the outage did not bite: %+v", want)
	}
	waitFor(t, "a heartbeat with the drops", func() bool {
		got := summary().Totals.Drops.SensorQueue
		if got > want.BufferDrops {
			t.Fatalf("heartbeat counts %d queue drops, the sensor %d", got, want.BufferDrops)
		}
		return got == want.BufferDrops
	})
	got := summary()
	if got.Totals.Packets != want.PacketsCaptured || got.Totals.RecordsOut != 0 ||
		got.Totals.Drops.KernelRing+got.Totals.Drops.Interface != 0 {
		t.Errorf("heartbeat totals %+v, sensor %+v", got.Totals, want)
	}
	if got.TotalDropRatio <= 0 || got.Nodes[0].Drops.SensorQueue != want.BufferDrops {
		t.Errorf("drop ratio %v, node %+v", got.TotalDropRatio, got.Nodes[0])
	}
	gate.restore()
}

// A sensor that cannot capture (its interface does not exist) exits with the reason and says it in a
// last heartbeat too, which the aggregator keeps as the node's problem.
func TestSensorThatCannotStartSaysWhyInAHeartbeat(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	stats := kafkatest.NewTopic(t, kafka, 1)
	t.Setenv("NODE_NAME", "hb-node")
	t.Setenv("POD_NAME", "edge-fghij")
	cmd := NewCommand()
	cmd.SetArgs([]string{"--interfaces", "nosuch0", "--netns", n.Path, "--topic", topic,
		"--kafka-brokers", kafka.Brokers[0], "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--ring-blocks", "16", "--stats-topic", stats, "--heartbeat-interval", "200ms",
		"--resource-namespace", "capture", "--resource-name", "edge", "--resource-uid", "u2"})
	cmdErr := cmd.ExecuteContext(context.Background())
	if cmdErr == nil || !strings.Contains(cmdErr.Error(), "nosuch0") {
		t.Fatalf("sensor on a missing interface: %v", cmdErr)
	}
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	cl, err := kafka.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cstop := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() { agg.Consume(cctx, cl, time.Second, nil); close(consumed) }()
	defer func() { cstop(); <-consumed }()
	key := heartbeat.ResourceKey{Kind: heartbeat.KindCaptureSensor, Namespace: "capture", Name: "edge", UID: "u2"}
	waitFor(t, "the failure in a heartbeat", func() bool {
		s, _ := agg.Summary(key)
		return len(s.Nodes) == 1 && s.Nodes[0].Node == "hb-node" && s.Nodes[0].Problem == cmdErr.Error() && s.PodsExited == 1
	})
}
