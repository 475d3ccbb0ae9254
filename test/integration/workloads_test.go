package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/replay"
	"capfleet.dev/capfleet/sensor"
)

// The real workloads (sensor, replayer, processor) run in the test binary as their pods would, against the
// operator running in it too (controllerstest), a real broker and, for the sensor, a network namespace: their
// heartbeats must reach the status of the resource they serve.

var (
	namespace  = controllerstest.Namespace
	get        = controllerstest.Get
	eventually = controllerstest.Eventually
	statsTopic = controllerstest.StatsTopic
)

func key(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }

// netnsRun runs a command inside a network namespace, failing the test on error.
func netnsRun(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
}

// The real sensor, run as a CaptureSensor's workload, captures what tcpreplay sends at 5,000 packets/s on a
// veth pair inside a network namespace the test makes; 30 s in, the status reports that rate within 5%.
func TestSensorStatusFromRealSensor(t *testing.T) {
	op := controllerstest.Start(t)
	op.NeedFigures(t)
	c := op.Client
	kc := kafkatest.Plain(t)
	for _, tool := range []string{"ip", "tcpreplay"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s is missing: run hack/deps.sh", tool)
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	netns := "cfop-" + hex.EncodeToString(suffix)
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot create a network namespace (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	// No addresses and no IPv6: the only frames on the pair are those tcpreplay sends.
	netnsRun(t, netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	netnsRun(t, netns, "ip", "link", "add", "cftx", "type", "veth", "peer", "name", "cfrx")
	for _, dev := range []string{"cftx", "cfrx"} {
		netnsRun(t, netns, "ip", "link", "set", dev, "mtu", "65000", "up")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t, c)
	cs := controllerstest.RunningSensor(t, c, ns, "real", "cfrx")

	// envtest runs no kubelet: the test runs what the DaemonSet's pod would, with the identity its env carries.
	t.Setenv("NODE_NAME", "node-real")
	cmd := sensor.NewCommand()
	cmd.SetArgs([]string{"--interfaces", "cfrx", "--netns", "/var/run/netns/" + netns, "--topic", kafkatest.NewTopic(t, kc, 3),
		"--kafka-brokers", strings.Join(kc.Brokers, ","), "--metrics-addr", "", "--health-addr", "",
		"--stats-topic", statsTopic, "--heartbeat-interval", "1s", "--resource-kind", "CaptureSensor",
		"--resource-namespace", ns, "--resource-name", cs.Name, "--resource-uid", string(cs.UID)})
	cmd.SetOut(&strings.Builder{})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	time.Sleep(3 * time.Second) // the rings open and the producer reaches the broker

	const pps = 5000
	replay := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "tcpreplay", "-i", "cftx", "--pps", "5000",
		"--loop", "0", "--duration", "45", filepath.Join(testenv.Pcaps(t), "ndpi", "1kxun.pcap"))
	if err := replay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = replay.Process.Kill(); _ = replay.Wait() }()
	start := time.Now()
	var got int64
	for time.Since(start) < 42*time.Second {
		time.Sleep(time.Second)
		get(t, c, cs)
		got = cs.Status.PacketsPerSecond
		if time.Since(start) >= 30*time.Second && got >= pps*95/100 && got <= pps*105/100 {
			break
		}
	}
	if got < pps*95/100 || got > pps*105/100 {
		t.Fatalf("after %s of tcpreplay at %d packets/s the status says %d packets/s (status %+v)", time.Since(start).Round(time.Second), pps, got, cs.Status)
	}
	if cs.Status.Drops == nil || cs.Status.Drops.KernelRing != 0 || cs.Status.Drops.SensorQueue != 0 || len(cs.Status.PerNode) != 1 || cs.Status.PerNode[0].Node != "node-real" {
		t.Errorf("drops %+v per node %+v", cs.Status.Drops, cs.Status.PerNode)
	}
	t.Logf("status reports %d packets/s, drops %+v, %s after tcpreplay began", got, *cs.Status.Drops, time.Since(start).Round(time.Second))
	cancel()
	if err := <-done; err != nil && !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("sensor: %v", err)
	}
}

// The real replayer, run as the workload of a ReplayJob, reports progress through its heartbeats: the
// ReplayJob's PROGRESS rises without going back and ends at 100% with every packet counted.
func TestReplayProgressFromHeartbeats(t *testing.T) {
	op := controllerstest.Start(t)
	op.NeedFigures(t)
	c := op.Client
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
	op := controllerstest.Start(t)
	op.NeedFigures(t)
	c := op.Client
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
		s, ok := op.Figures.Summary(heartbeat.KindPacketPipeline, pp)
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
