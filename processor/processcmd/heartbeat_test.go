package processcmd

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
)

func TestHeartbeatCountersFromSnapshot(t *testing.T) {
	got := heartbeatCounters(pipeline.Snapshot{RecordsIn: 100, BadRecords: 1, Decoded: 90,
		DecodeErrors: map[string]uint64{"truncated": 4, "unknown_ethertype": 5}, Filtered: 30, PacketsWritten: 60,
		FlowsWritten: 7, FlowUpdates: 9, SinkErrors: 2, FlowsActive: 11, Lag: 12})
	want := heartbeat.Counters{Packets: 90, RecordsIn: 100, RecordsOut: 67, DecodeErrors: 10, Filtered: 30,
		SinkErrors: 2, FlowsWritten: 7, FlowsActive: 11, ConsumerLag: 12}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// `capfleet process` beats its counters: every record in, the filtered share
// tcpdump's filter rejects, the bad record as a decode error, lag down to 0.
func TestProcessCommandPublishesHeartbeats(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is needed as the oracle: run hack/deps.sh")
	}
	kcfg := kafkatest.Plain(t)
	input := pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap")
	frames := pipelinetest.ReadCapture(t, input)
	const filter = "udp and port 30303"
	keep := tcpdumpCount(t, input, filter)
	topic := kafkatest.NewTopic(t, kcfg, 2)
	stats := kafkatest.NewTopic(t, kcfg, 1)
	pipelinetest.Produce(t, kcfg, topic, frames)
	cl, err := kcfg.NewClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pipelinetest.ProduceRecords(t, cl, &kgo.Record{Value: []byte("not a packet record")})

	t.Setenv("POD_NAME", "pipe-0")
	cmd := NewCommand()
	cmd.SetArgs([]string{"--topic", topic, "--group", unique("hb-"), "--filter", filter,
		"--kafka-brokers", strings.Join(kcfg.Brokers, ","), "--metrics-addr", "", "--health-addr", "",
		"--stats-topic", stats, "--heartbeat-interval", "200ms",
		"--resource-namespace", "ns", "--resource-name", "pipe", "--resource-uid", "u"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	agg := heartbeat.NewAggregator(heartbeat.Options{})
	scl, err := kcfg.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer scl.Close()
	cctx, cstop := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() { agg.Consume(cctx, scl, time.Second, nil); close(consumed) }()
	defer func() { cstop(); <-consumed }()
	key := heartbeat.ResourceKey{Kind: heartbeat.KindPacketPipeline, Namespace: "ns", Name: "pipe", UID: "u"}
	summary := func() heartbeat.Summary { s, _ := agg.Summary(key); return s }

	pipelinetest.Eventually(t, 3*time.Minute, "every record consumed and committed", func() (bool, string) {
		s := summary()
		return s.Totals.RecordsIn == uint64(len(frames)+1) && s.Totals.ConsumerLag == 0 && s.PodsLive == 1,
			fmt.Sprintf("in %d of %d, lag %d", s.Totals.RecordsIn, len(frames)+1, s.Totals.ConsumerLag)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, time.Minute, "the final beat", func() (bool, string) {
		return summary().PodsExited == 1, "not yet"
	})
	s := summary()
	if s.Totals.Filtered != uint64(len(frames)-keep) {
		t.Errorf("filtered %d, tcpdump's filter rejects %d of %d", s.Totals.Filtered, len(frames)-keep, len(frames))
	}
	if s.Totals.DecodeErrors < 1 {
		t.Errorf("the record that is not a packet record is not among %d decode errors", s.Totals.DecodeErrors)
	}
}

// A failure the process keeps retrying (here its flows topic does not exist) is in its heartbeat, so the
// operator can say why a Running processor does nothing; once it is fixed and the process commits
// again, the beats stop carrying it.
func TestHeartbeatTellsTheFailureBeingRetried(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	topic := kafkatest.NewTopic(t, kcfg, 1)
	stats := kafkatest.NewTopic(t, kcfg, 1)
	flowsTopic := unique("missing-flows-")
	pipelinetest.Produce(t, kcfg, topic, frames)

	t.Setenv("POD_NAME", "pipe-0")
	t.Setenv("NODE_NAME", "node-a")
	cmd := NewCommand()
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	cmd.SetArgs(append([]string{"--topic", topic, "--group", unique("hbp-"), "--flows-topic", flowsTopic, "--flow-idle-timeout", "1s",
		"--store-flows", "--keyspace", ks, "--metrics-addr", "", "--health-addr", "",
		"--stats-topic", stats, "--heartbeat-interval", "200ms",
		"--resource-namespace", "ns", "--resource-name", "pipe", "--resource-uid", "u"}, connArgs(kcfg, ccfg)...))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	agg := heartbeat.NewAggregator(heartbeat.Options{})
	scl, err := kcfg.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer scl.Close()
	cctx, cstop := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() { agg.Consume(cctx, scl, time.Second, nil); close(consumed) }()
	defer func() { cstop(); <-consumed }()
	key := heartbeat.ResourceKey{Kind: heartbeat.KindPacketPipeline, Namespace: "ns", Name: "pipe", UID: "u"}
	problem := func() string {
		select {
		case err := <-done:
			t.Fatalf("process exited: %v", err)
		default:
		}
		s, _ := agg.Summary(key)
		if len(s.Nodes) == 0 {
			return ""
		}
		return s.Nodes[0].Problem
	}
	pipelinetest.Eventually(t, 2*time.Minute, "the missing flows topic in the heartbeat", func() (bool, string) {
		p := problem()
		return strings.Contains(p, "publish flows to "+flowsTopic) && strings.Contains(p, "failing since"), fmt.Sprintf("problem %q", p)
	})
	kafkatest.CreateTopic(t, kcfg, flowsTopic, 1)
	pipelinetest.Eventually(t, 2*time.Minute, "no problem once the topic exists", func() (bool, string) {
		p := problem()
		return p == "", fmt.Sprintf("problem %q", p)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
