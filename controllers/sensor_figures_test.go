package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/sensor"
)

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
	c := cluster(t)
	needFigures(t)
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
	cs := &v1alpha1.CaptureSensor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "real"},
		Spec:       v1alpha1.CaptureSensorSpec{Interfaces: []string{"cfrx"}, DropThresholdPercent: 1},
	}
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	get(t, c, cs)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "real-sensor"}}
	eventually(t, "DaemonSet reported ready", func() error {
		if err := c.Get(ctx, key(ds), ds); err != nil {
			return err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1, CurrentNumberScheduled: 1,
			UpdatedNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1}
		return c.Status().Update(ctx, ds)
	})

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
