//go:build e2e

// Package e2e runs capfleet on the local node (hack/local-cluster.sh, operator from config/local): a
// ReplayJob sends a real capture onto one end of a veth pair, a CaptureSensor captures the other end into
// Kafka, a PacketPipeline stores packets and flows in Cassandra; every count must agree with the file as
// tcpdump and tshark read it. Run with `make e2e` (hack/e2e.sh), which brings all of that up first.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/query"
)

const node = "127.0.0.1" // the local node is named by its address

func TestReplayCaptureStore(t *testing.T) {
	c := cluster(t)
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ctx := context.Background()
	capture := filepath.Join(repoRoot(t), "testdata/ftp-bruteforce.pcap")

	// The oracles: what tcpdump and tshark read in the file.
	wantPackets := commandCount(t, func(string) bool { return true }, "tcpdump", "-nr", capture)
	wantFlows := commandCount(t, func(l string) bool { return strings.Contains(l, "<->") }, "tshark", "-r", capture, "-q", "-z", "conv,tcp")
	t.Logf("%s: %d packets, %d TCP conversations (tcpdump, tshark)", filepath.Base(capture), wantPackets, wantFlows)

	ns := namespace(t, c)
	sfx := strings.TrimPrefix(ns, "e2e-")
	tx, rx := "cf"+sfx+"tx", "cf"+sfx+"rx"
	vethPair(t, tx, rx)
	keyspace := "e2e_" + sfx
	dropKeyspace(t, ccfg, keyspace)
	topic := ns + ".sensor.packets"
	deleteTopic(t, kcfg, topic) // the sensor keeps its topic (Retain); the test does not

	// What the operator's workloads read: the capture and the Cassandra login, as the demo provides them.
	pcapBytes, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c,
		cassandraCreds(t, ccfg, ns),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "captures", Namespace: ns}, BinaryData: map[string][]byte{"capture.pcap": pcapBytes}})

	sensor := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Name: "sensor", Namespace: ns}, Spec: v1alpha1.CaptureSensorSpec{
		Interfaces: []string{rx}, SnapLength: 65535,
		Ring:  v1alpha1.RingSpec{BlockSizeKiB: 256, Blocks: 16},
		Topic: v1alpha1.TopicSpec{Partitions: 3, Retention: &metav1.Duration{Duration: time.Hour}},
	}}
	pipeline := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Name: "store", Namespace: ns}, Spec: v1alpha1.PacketPipelineSpec{
		Source:   v1alpha1.PipelineSource{Sensor: sensor.Name},
		Replicas: ptr(int32(1)), // processors in the node's network share its ports
		Flows:    v1alpha1.FlowSettings{IdleTimeout: &metav1.Duration{Duration: 5 * time.Second}},
		Sinks: v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{
			Packets: true, Flows: true, Keyspace: keyspace, ReplicationFactor: 1,
		}},
	}}
	mustCreate(t, c, sensor, pipeline)
	for _, o := range []client.Object{sensor, pipeline} {
		eventually(t, 3*time.Minute, "Ready and kstatus Current", func() error { return current(c, o) })
	}

	start := time.Now().Add(-time.Second)
	replay := &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Name: "replay", Namespace: ns}, Spec: v1alpha1.ReplayJobSpec{
		Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "captures", Key: "capture.pcap"}},
		Pace:   &v1alpha1.ReplayPace{PacketsPerSecond: ptr(int64(200))},
		Loops:  1,
		Target: v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: tx, NodeName: node}},
	}}
	mustCreate(t, c, replay)
	waitReplay(t, c, replay)

	t.Run("replay sent every packet", func(t *testing.T) {
		sent := replaySummary(t, ns, replay.Status.Job)
		if !strings.Contains(sent, fmt.Sprintf("Successful packets:        %d\n", wantPackets)) || !strings.Contains(sent, "Failed packets:            0\n") {
			t.Errorf("replay summary does not report %d packets sent, none failed:\n%s", wantPackets, sent)
		}
		// The status follows the replay's heartbeats, written at most once per status interval.
		eventually(t, time.Minute, "status counts the packets sent", func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(replay), replay); err != nil {
				return err
			}
			st := replay.Status
			if st.PacketsSent != int64(wantPackets) || st.PacketsTotal != int64(wantPackets) || st.Failed != 0 || st.Progress != "100%" {
				return fmt.Errorf("status sent %d of %d, failed %d, progress %q; the file has %d packets",
					st.PacketsSent, st.PacketsTotal, st.Failed, st.Progress, wantPackets)
			}
			return nil
		})
	})
	t.Run("sensor published every packet to its topic", func(t *testing.T) {
		if got := countRecords(t, kcfg, topic, wantPackets); got != wantPackets {
			_ = c.Get(ctx, client.ObjectKeyFromObject(sensor), sensor)
			t.Errorf("topic %s holds %d records, file has %d packets; sensor status: drops %+v, per node %+v",
				topic, got, wantPackets, sensor.Status.Drops, sensor.Status.PerNode)
		}
	})
	t.Run("pipeline stored every packet, byte for byte", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "stored.pcap")
		eventually(t, 2*time.Minute, "packets stored", func() error {
			if _, err := runQuery(t, ccfg, "packets", "--keyspace", keyspace, "--sensor", sensor.Name, "--from", start.UTC().Format(time.RFC3339), "--format", "pcap", "-w", out); err != nil {
				return err
			}
			if n := commandCount(t, func(string) bool { return true }, "tcpdump", "-nr", out); n != wantPackets {
				return fmt.Errorf("%d packets stored, file has %d", n, wantPackets)
			}
			return nil
		})
		sameFrames(t, capture, out)
	})
	t.Run("pipeline stored every flow", func(t *testing.T) {
		eventually(t, 2*time.Minute, "flows stored and closed", func() error {
			out, err := runQuery(t, ccfg, "flows", "--keyspace", keyspace, "--from", start.UTC().Format(time.RFC3339), "-o", "json")
			if err != nil {
				return err
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != wantFlows {
				return fmt.Errorf("%d flows stored, tshark finds %d TCP conversations", len(lines), wantFlows)
			}
			for _, l := range lines {
				var f map[string]any
				if err := json.Unmarshal([]byte(l), &f); err != nil {
					return fmt.Errorf("flow %q: %v", l, err)
				}
			}
			return nil
		})
	})

	t.Run("a killed sensor pod is replaced and captures", func(t *testing.T) {
		pods := podsOf(t, c, ns, "sensor")
		if len(pods) != 1 {
			t.Fatalf("%d sensor pods, want 1", len(pods))
		}
		if err := c.Delete(ctx, &pods[0], client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "a new sensor pod, Ready", func() error {
			now := podsOf(t, c, ns, "sensor")
			if len(now) != 1 || now[0].UID == pods[0].UID || !podReady(now[0]) {
				return fmt.Errorf("%d sensor pods; the killed one was %s", len(now), pods[0].Name)
			}
			return current(c, sensor)
		})
		// Running is not capturing: the replacement must capture a second replay in full.
		again := replay.DeepCopy()
		again.ObjectMeta = metav1.ObjectMeta{Name: "replay-after-kill", Namespace: ns}
		again.Status = v1alpha1.ReplayJobStatus{}
		mustCreate(t, c, again)
		waitReplay(t, c, again)
		if got := countRecords(t, kcfg, topic, 2*wantPackets); got != 2*wantPackets {
			t.Errorf("topic %s holds %d records after two replays of %d packets", topic, got, wantPackets)
		}
		if err := c.Delete(ctx, again); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deleting the resources removes the pods and keeps the topic", func(t *testing.T) {
		for _, o := range []client.Object{replay, pipeline, sensor} {
			if err := c.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 3*time.Minute, "no capfleet pods left", func() error {
			if n := len(podsOf(t, c, ns, "")); n != 0 {
				return fmt.Errorf("%d pods left", n)
			}
			return nil
		})
		if !topicExists(t, kcfg, topic) {
			t.Errorf("topic %s was deleted; the default deletion policy is Retain", topic)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// waitReplay waits for the ReplayJob to succeed and be Current; a failed replay ends the test.
func waitReplay(t *testing.T, c client.Client, rj *v1alpha1.ReplayJob) {
	t.Helper()
	eventually(t, 5*time.Minute, "replay "+rj.Name+" Succeeded", func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(rj), rj); err != nil {
			return err
		}
		if rj.Status.Phase == v1alpha1.ReplayFailed {
			t.Fatalf("replay %s failed: %+v", rj.Name, rj.Status)
		}
		if rj.Status.Phase != v1alpha1.ReplaySucceeded {
			return fmt.Errorf("phase %q", rj.Status.Phase)
		}
		return current(c, rj)
	})
}

func mustCreate(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// podsOf lists the capfleet pods in ns, of one resource when instance is set.
func podsOf(t *testing.T, c client.Client, ns, instance string) []corev1.Pod {
	t.Helper()
	sel := client.MatchingLabels{"app.kubernetes.io/name": "capfleet"}
	if instance != "" {
		sel["app.kubernetes.io/instance"] = instance
	}
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(ns), sel); err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// countRecords reads the topic from its start until want records came, or nothing more comes for a while.
func countRecords(t *testing.T, cfg kafkaconn.Config, topic string, want int) int {
	t.Helper()
	cl, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n, quiet := 0, 0
	for quiet < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		got := fs.NumRecords()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("consume %s: %v", topic, e.Err)
			}
		}
		n += got
		// Past the count, keep listening a little: a record too many must show too.
		if got == 0 || n >= want {
			quiet++
		}
	}
	return n
}

func topicExists(t *testing.T, cfg kafkaconn.Config, topic string) bool {
	t.Helper()
	cl, err := cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return td.Has(topic) && td[topic].Err == nil
}

func deleteTopic(t *testing.T, cfg kafkaconn.Config, topic string) {
	t.Cleanup(func() {
		cl, err := cfg.NewClient()
		if err != nil {
			t.Error(err)
			return
		}
		defer cl.Close()
		_, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), topic)
	})
}

func dropKeyspace(t *testing.T, cfg cassconn.Config, keyspace string) {
	t.Cleanup(func() {
		s, err := cfg.Session()
		if err != nil {
			t.Errorf("drop keyspace %s: %v", keyspace, err)
			return
		}
		defer s.Close()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
			t.Errorf("drop keyspace %s: %v", keyspace, err)
		}
	})
}

// runQuery runs `capfleet query ARGS...` in-process against the test's Cassandra and returns what it printed.
func runQuery(t *testing.T, cfg cassconn.Config, args ...string) (string, error) {
	t.Helper()
	cmd := query.NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	args = append(args, "--cassandra-hosts", strings.Join(cfg.Hosts, ","), "--cassandra-port", fmt.Sprint(cfg.Port),
		"--cassandra-secret-dir", cfg.SecretDir)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// sameFrames checks the stored capture holds exactly the file's frames, in order.
func sameFrames(t *testing.T, wantPath, gotPath string) {
	t.Helper()
	read := func(p string) [][]byte {
		r, err := pcapfile.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var frames [][]byte
		for {
			pk, err := r.Next()
			if errors.Is(err, io.EOF) {
				return frames
			}
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, bytes.Clone(pk.Data))
		}
	}
	want, got := read(wantPath), read(gotPath)
	if len(want) != len(got) {
		t.Fatalf("%d frames stored, file has %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("frame %d differs: stored % x, file % x", i, got[i], want[i])
		}
	}
}
