package processcmd

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/pcaptool/decodecmd"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
)

// TestPacketRecordsTopicEqualsFileRecords produces the packets of captures with IPv4 options,
// IPv6, TCP options, UDP and tunnels to a packets topic, runs `capfleet process --records-topic`
// against the real broker (no Cassandra: the records sink needs none), and reads the records topic
// back: one record per packet, none lost, each keyed by its packet's partition:offset once, and as a
// multiset equal to what `capfleet pcap decode --json-records` prints for the same files (whose
// fields TestRecordsParityWithTshark checks against tshark), frame.number aside.
func TestPacketRecordsTopicEqualsFileRecords(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	files := []string{"ndpi/ethereum.pcap", "zeek/wikipedia.pcap", "zeek/igmp/igmp.pcap", "zeek/tunnels/vxlan.pcap", "zeek/ipv6-hbh-routing0.pcap", "zeek/ipv4/fragmented-syn.pcap"}
	var frames []pipelinetest.Frame
	var want []string
	for _, rel := range files {
		path := pipelinetest.SharedPcap(t, rel)
		frames = append(frames, pipelinetest.ReadCapture(t, path)...)
		want = append(want, fileRecords(t, path)...)
	}
	if len(want) != len(frames) {
		t.Fatalf("pcap decode --json-records printed %d records for %d packets", len(want), len(frames))
	}
	topic := kafkatest.NewTopic(t, kcfg, 3)
	recordsTopic := kafkatest.NewTopic(t, kcfg, 2)
	pipelinetest.Produce(t, kcfg, topic, frames)

	metricsAddr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := NewCommand()
	cmd.SetArgs([]string{"--topic", topic, "--group", unique("records-"), "--records-topic", recordsTopic,
		"--kafka-brokers", strings.Join(kcfg.Brokers, ","), "--metrics-addr", metricsAddr, "--health-addr", "",
		"--commit-interval", "300ms"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	keys, got := consumeRecords(t, kcfg, recordsTopic, len(frames))
	pipelinetest.Eventually(t, time.Minute, "records counted on /metrics", func() (bool, string) {
		m := httpGetOrEmpty("http://" + metricsAddr + "/metrics")
		return strings.Contains(m, fmt.Sprintf("capfleet_process_packet_records_published_total %d\n", len(frames))), "not yet"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Nothing more than one per packet arrived after the count was reached.
	if k2, _ := consumeRecords(t, kcfg, recordsTopic, 0); len(k2) != len(frames) {
		t.Errorf("records topic holds %d records after the run, want %d (one per packet)", len(k2), len(frames))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("key %s twice", k)
		}
		seen[k] = true
	}
	slices.Sort(got)
	slices.Sort(want)
	bad := 0
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			if bad++; bad <= 3 {
				t.Errorf("record %d of the sorted lists differs:\ntopic %s\nfile  %s", i, got[i], want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records differ", bad, len(want))
	}
	t.Logf("%d packets of %d captures: %d records consumed, equal to the file's", len(frames), len(files), len(got))
}

var frameNumber = regexp.MustCompile(`^\{"frame\.number":[0-9]+,`)

// fileRecords is `capfleet pcap decode --json-records FILE` without frame.number, which a pipeline
// does not know.
func fileRecords(t *testing.T, path string) []string {
	t.Helper()
	cmd := decodecmd.NewDecodeCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs([]string{"--json-records", path})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("pcap decode --json-records %s: %v: %s", path, err, errb.String())
	}
	var recs []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !frameNumber.MatchString(l) {
			t.Fatalf("record without frame.number first: %s", l)
		}
		recs = append(recs, frameNumber.ReplaceAllString(l, "{"))
	}
	return recs
}

// consumeRecords reads the records topic from its start until n records came (n = 0: until it has
// been quiet for a few seconds), returning their keys and values.
func consumeRecords(t *testing.T, cfg kafkaconn.Config, topic string, n int) (keys, values []string) {
	t.Helper()
	cl, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for n == 0 || len(values) < n {
		wait := time.Until(deadline)
		if n == 0 {
			wait = 3 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		expired := ctx.Err() != nil
		cancel()
		if expired {
			if n == 0 {
				break
			}
			t.Fatalf("records topic %s holds %d records, want %d", topic, len(values), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			keys = append(keys, string(r.Key))
			values = append(values, string(r.Value))
		})
	}
	return keys, values
}

// TestPacketRecordsSurviveAKill: a processor killed with SIGKILL mid-stream and restarted loses no
// packet record. Offsets are committed only past acknowledged records, so a restart may produce some
// again (at least once), under the same partition:offset key with the same value: dropping repeated
// keys leaves exactly one record per packet, equal to the file's.
func TestPacketRecordsSurviveAKill(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	path := pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap")
	base := pipelinetest.ReadCapture(t, path)
	baseWant := fileRecords(t, path)
	var frames []pipelinetest.Frame
	var want []string
	for range 10 {
		frames = append(frames, base...)
		want = append(want, baseWant...)
	}
	topic := kafkatest.NewTopic(t, kcfg, 3)
	recordsTopic := kafkatest.NewTopic(t, kcfg, 2)
	group := unique("records-kill-")
	pipelinetest.Produce(t, kcfg, topic, frames)
	ctx := context.Background()

	metrics := testenv.FreeAddr(t)
	args := []string{"--topic", topic, "--group", group, "--records-topic", recordsTopic,
		"--kafka-brokers", strings.Join(kcfg.Brokers, ","), "--metrics-addr", metrics, "--health-addr", "",
		"--commit-interval", "100ms", "--max-poll-records", "20"}
	killAfterFirstCommit(t, ctx, args, metrics, kcfg, group, topic)

	child, log := startChild(t, args)
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		if err := child.Wait(); err != nil {
			t.Errorf("restarted process: %v\n%s", err, tail(log.String(), 20))
		}
	}()
	pipelinetest.Eventually(t, 3*time.Minute, "all offsets committed after the restart", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		return err == nil && c == end, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})
	keys, values := consumeRecords(t, kcfg, recordsTopic, 0)
	byKey := map[string]string{}
	for i, k := range keys {
		if v, ok := byKey[k]; ok && v != values[i] {
			t.Fatalf("key %s produced twice with different records:\n%s\n%s", k, v, values[i])
		}
		byKey[k] = values[i]
	}
	if len(byKey) != len(frames) {
		t.Fatalf("%d distinct records (of %d produced), want one per packet: %d", len(byKey), len(keys), len(frames))
	}
	got := make([]string, 0, len(byKey))
	for _, v := range byKey {
		got = append(got, v)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatal("the distinct records differ from pcap decode --json-records on the same packets")
	}
	t.Logf("%d packets: %d records produced, %d repeated by the restart, one per packet after dropping repeated keys", len(frames), len(keys), len(keys)-len(byKey))
}
