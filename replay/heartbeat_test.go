package replay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkatest"
)

func TestHeartbeatCountersFromProgress(t *testing.T) {
	got := heartbeatCounters(Progress{PacketsSent: 90, BytesSent: 9000, PacketsFailed: 2, BytesFailed: 200,
		PacketsTruncated: 1, LoopsDone: 1, PacketsTotal: 100, BytesTotal: 10000})
	want := heartbeat.Counters{Packets: 90, Bytes: 9000, PacketsDone: 92, BytesDone: 9200,
		PacketsTotal: 100, BytesTotal: 10000, Failed: 2, Truncated: 1}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// `capfleet replay` with a resource identity beats its progress: rising
// beat after beat, 100% in the final beat, the file's packet count done.
func TestReplayCommandPublishesProgress(t *testing.T) {
	cfg := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, cfg, 1)
	stats := kafkatest.NewTopic(t, cfg, 1)
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	want := tcpdumpCount(t, path)
	t.Setenv("POD_NAME", "rj-xyz")
	replayCommand(t, NewCommand(), "--file", path, "--topic", topic, "--pps", "1000", "--loop", "2",
		"--metrics-addr", "", "--kafka-brokers", strings.Join(cfg.Brokers, ","),
		"--stats-topic", stats, "--heartbeat-interval", "100ms",
		"--resource-namespace", "ns", "--resource-name", "rj", "--resource-uid", "u")

	cl, err := cfg.NewClient(kgo.ConsumeTopics(stats), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	key := heartbeat.ResourceKey{Kind: heartbeat.KindReplayJob, Namespace: "ns", Name: "rj", UID: "u"}
	last, beats := -1.0, 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for done := false; !done; {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("reading %s after %d beats: %v", stats, beats, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			b, err := heartbeat.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			beats++
			agg.Observe(b)
			s, _ := agg.Summary(key)
			if s.Progress.Percent < last {
				t.Errorf("beat %d: progress %.1f%% after %.1f%%", b.Seq, s.Progress.Percent, last)
			}
			last, done = s.Progress.Percent, b.Final
		})
	}
	s, _ := agg.Summary(key)
	p := s.Progress
	if p.Percent != 100 || !p.Finished || p.PacketsDone != uint64(2*want) || p.PacketsTotal != uint64(2*want) {
		t.Errorf("final progress %+v, want 100%% of 2 × %d packets (tcpdump)", p, want)
	}
	if s.Totals.Packets != uint64(2*want) || s.Totals.Failed != 0 {
		t.Errorf("totals %+v", s.Totals)
	}
	if beats < 3 {
		t.Errorf("%d beats: the run was too short to see progress", beats)
	}
}

// A replay that fails (its topic does not exist) says why in a last heartbeat as well as in its exit.
func TestReplayFailureInAHeartbeat(t *testing.T) {
	cfg := kafkatest.Plain(t)
	stats := kafkatest.NewTopic(t, cfg, 1)
	t.Setenv("POD_NAME", "rj-fail")
	cmd := NewCommand()
	cmd.SetArgs([]string{"--file", sharedPcap(t, "ndpi/teamviewer.pcap"), "--topic", "no-such-topic-" + strings.ToLower(t.Name()),
		"--pps", "1000", "--metrics-addr", "", "--kafka-brokers", strings.Join(cfg.Brokers, ","),
		"--stats-topic", stats, "--heartbeat-interval", "100ms",
		"--resource-namespace", "ns", "--resource-name", "rjf", "--resource-uid", "u"})
	cmd.SetOut(&strings.Builder{})
	runErr := cmd.ExecuteContext(context.Background())
	if runErr == nil || !strings.Contains(runErr.Error(), "does not exist") {
		t.Fatalf("replay into a missing topic: %v", runErr)
	}
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	cl, err := cfg.NewClient(heartbeat.ConsumerOptions(stats, time.Hour)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go agg.Consume(ctx, cl, time.Second, nil)
	key := heartbeat.ResourceKey{Kind: heartbeat.KindReplayJob, Namespace: "ns", Name: "rjf", UID: "u"}
	for {
		if s, _ := agg.Summary(key); len(s.Nodes) == 1 && s.Nodes[0].Problem == runErr.Error() {
			return
		}
		if ctx.Err() != nil {
			s, _ := agg.Summary(key)
			t.Fatalf("no heartbeat with the failure %q: %+v", runErr, s.Nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
