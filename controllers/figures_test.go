package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/replay"
)

// needFigures ends a test when the operator under test reads no heartbeats (no broker).
func needFigures(t *testing.T) {
	t.Helper()
	kafkatest.Plain(t)
	if figures == nil {
		testenv.Missing(t, "the operator under test reads no heartbeats: start Kafka with hack/kafka.sh start")
	}
}

// A node's sensor beats counters that grow at a known rate; the CaptureSensor's status reports that rate
// within 5%, then, when drops are injected, their cause and a Degraded Ready condition.
func TestSensorStatusFromHeartbeats(t *testing.T) {
	c := cluster(t)
	needFigures(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t, c)
	cs := &v1alpha1.CaptureSensor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "beating"},
		Spec:       v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}, DropThresholdPercent: 1},
	}
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	get(t, c, cs)
	// No DaemonSet controller runs in envtest: report the one sensor ready, as it would.
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "beating-sensor"}}
	eventually(t, "DaemonSet ready", func() error {
		if err := c.Get(ctx, key(ds), ds); err != nil {
			return err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1, CurrentNumberScheduled: 1,
			UpdatedNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1}
		return c.Status().Update(ctx, ds)
	})

	const pps = 5000
	var dropsPerSecond atomic.Int64
	start := time.Now()
	var dropped, lastTick atomic.Int64
	snap := func() heartbeat.Counters {
		elapsed := time.Since(start).Seconds()
		now := int64(elapsed * 1000)
		dropped.Add(dropsPerSecond.Load() * (now - lastTick.Swap(now)) / 1000)
		return heartbeat.Counters{
			Packets: uint64(elapsed * pps), Bytes: uint64(elapsed * pps * 800), RecordsOut: uint64(elapsed * pps),
			Drops: heartbeat.Drops{SensorQueue: uint64(dropped.Load())},
		}
	}
	pub, err := heartbeat.Dial(heartbeat.Config{
		Topic: statsTopic, Interval: time.Second, Kind: heartbeat.KindCaptureSensor,
		Namespace: ns, Name: cs.Name, UID: string(cs.UID), Pod: "beating-sensor-x", Node: "node-a",
	}, kafkatest.Plain(t), snap, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	go pub.Run(ctx)

	deadline := time.Now().Add(60 * time.Second)
	for {
		get(t, c, cs)
		got := cs.Status.PacketsPerSecond
		if got >= pps*95/100 && got <= pps*105/100 && len(cs.Status.PerNode) == 1 && time.Since(start) > 10*time.Second {
			t.Logf("status reports %d packets/s after %s (node %s)", got, time.Since(start).Round(time.Second), cs.Status.PerNode[0].Node)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status packets/s %d, want %d within 5%%; status %+v", got, pps, cs.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if cs.Status.PerNode[0].Node != "node-a" || cs.Status.PerNode[0].LastHeartbeat == nil {
		t.Errorf("per-node status %+v", cs.Status.PerNode)
	}

	dropsPerSecond.Store(250) // 5% of what is offered
	eventually(t, "drops by cause, Degraded", func() error {
		get(t, c, cs)
		ready := condition(cs, v1alpha1.ConditionReady)
		if cs.Status.Drops == nil || cs.Status.Drops.SensorQueue == 0 || cs.Status.Drops.KernelRing != 0 {
			return fmt.Errorf("drops %+v", cs.Status.Drops)
		}
		if ready == nil || ready.Reason != "Degraded" || !strings.Contains(ready.Message, "sensor queue") {
			return fmt.Errorf("Ready %+v, drop %% %s", ready, cs.Status.DropPercent)
		}
		return nil
	})
	t.Logf("drops %+v, drop %s, Ready: %s", *cs.Status.Drops, cs.Status.DropPercent, condition(cs, v1alpha1.ConditionReady).Message)
}

// The real replayer, run as the workload of a ReplayJob, reports progress through its heartbeats: the
// ReplayJob's PROGRESS rises without going back and ends at 100% with every packet counted.
func TestReplayProgressFromHeartbeats(t *testing.T) {
	c := cluster(t)
	needFigures(t)
	kc := kafkatest.Plain(t)
	ctx := context.Background()
	ns := namespace(t, c)
	file := filepath.Join(testenv.Pcaps(t), "ndpi", "fix2.pcap")
	out, err := exec.Command("tcpdump", "--count", "-r", file).Output()
	if err != nil {
		t.Fatalf("tcpdump --count: %v", err)
	}
	filePackets, _ := strconv.Atoi(strings.Fields(string(out))[0])

	rj := &v1alpha1.ReplayJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "progress"},
		Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "caps", Key: "fix2.pcap"}},
			Loops:  2,
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: kafkatest.NewTopic(t, kc, 3)}},
		},
	}
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	get(t, c, rj)

	// envtest runs no kubelet: the test runs what the Job's pod would, with the identity the pod's env carries.
	cmd := replay.NewCommand()
	cmd.SetArgs([]string{"--file", file, "--pps", "1000", "--loop", "2", "--topic", rj.Spec.Target.Topic.Name,
		"--metrics-addr", "", "--kafka-brokers", strings.Join(kc.Brokers, ","), "--stats-topic", statsTopic,
		"--heartbeat-interval", "1s", "--resource-kind", "ReplayJob", "--resource-namespace", ns,
		"--resource-name", rj.Name, "--resource-uid", string(rj.UID)})
	cmd.SetOut(&strings.Builder{})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	var seen []int
	deadline := time.Now().Add(90 * time.Second)
	for {
		get(t, c, rj)
		if p, err := strconv.Atoi(strings.TrimSuffix(rj.Status.Progress, "%")); err == nil && (len(seen) == 0 || p != seen[len(seen)-1]) {
			seen = append(seen, p)
		}
		if rj.Status.Progress == "100%" && rj.Status.PacketsSent == int64(2*filePackets) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress went %v; status %+v", seen, rj.Status)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("replay: %v", err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("progress went back: %v", seen)
		}
	}
	if len(seen) < 3 {
		t.Errorf("progress seen only as %v; want it to move while the replay runs", seen)
	}
	if rj.Status.PacketsTotal != int64(2*filePackets) || rj.Status.Failed != 0 {
		t.Errorf("status %+v, want %d packets in all, none failed", rj.Status, 2*filePackets)
	}
	t.Logf("progress %v, %d packets sent", seen, rj.Status.PacketsSent)
}

// The real processor, run as the workload of a PacketPipeline, drains a packets topic: the pipeline's status
// reports records flowing, then the consumer lag at 0 with every record read, and the decode error counted.
func TestPipelineStatusFromHeartbeats(t *testing.T) {
	c := cluster(t)
	needFigures(t)
	kc := kafkatest.Plain(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t, c)

	frames := pipelinetest.ReadCapture(t, filepath.Join(testenv.Pcaps(t), "ndpi", "ethereum.pcap"))
	topic := kafkatest.NewTopic(t, kc, 2)
	pipelinetest.Produce(t, kc, topic, frames)
	cl, err := kc.NewClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pipelinetest.ProduceRecords(t, cl, &kgo.Record{Value: []byte("not a packet record")})

	pp := &v1alpha1.PacketPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "draining"},
		Spec: v1alpha1.PacketPipelineSpec{
			Source: v1alpha1.PipelineSource{Topic: topic},
			Sinks:  v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: "k", ReplicationFactor: 1}},
		},
	}
	if err := c.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	get(t, c, pp)

	// envtest runs no kubelet: the test runs what the Deployment's pod would, with its identity.
	cmd := processcmd.NewCommand()
	cmd.SetArgs([]string{"--topic", topic, "--group", "capfleet." + ns + ".draining", "--metrics-addr", "", "--health-addr", "",
		"--kafka-brokers", strings.Join(kc.Brokers, ","), "--stats-topic", statsTopic, "--heartbeat-interval", "1s",
		"--resource-kind", "PacketPipeline", "--resource-namespace", ns, "--resource-name", pp.Name, "--resource-uid", string(pp.UID)})
	cmd.SetOut(&strings.Builder{})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	eventually(t, "every record read, lag 0, the bad record counted", func() error {
		get(t, c, pp)
		st := pp.Status
		if st.ConsumerLag != 0 || st.DecodeErrors < 1 || st.Errors < st.DecodeErrors {
			return fmt.Errorf("lag %d, decode errors %d, errors %d, records/s %d", st.ConsumerLag, st.DecodeErrors, st.Errors, st.RecordsInPerSecond)
		}
		s, ok := figures.Summary(heartbeat.KindPacketPipeline, pp)
		if !ok || s.Totals.RecordsIn != uint64(len(frames)+1) {
			return fmt.Errorf("records in %d of %d", s.Totals.RecordsIn, len(frames)+1)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("process: %v", err)
	}
}
