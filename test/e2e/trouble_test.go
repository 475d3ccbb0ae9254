//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// Two CaptureSensors on one node and one interface, and a PacketPipeline for each with processors in the
// node's network: each gets node ports of its own, all become Ready, and
// each captures every replayed packet (AF_PACKET hands every socket its own copy).
func TestTwoSensorsOnOneInterface(t *testing.T) {
	c := cluster(t)
	kcfg := kafkatest.Plain(t)
	ctx := context.Background()
	capture := filepath.Join(repoRoot(t), "testdata/ftp-bruteforce.pcap")
	wantPackets := commandCount(t, func(string) bool { return true }, "tcpdump", "-nr", capture)

	ns := namespace(t, c)
	sfx := strings.TrimPrefix(ns, "e2e-")
	tx, rx := "cf"+sfx+"tx", "cf"+sfx+"rx"
	vethPair(t, tx, rx)
	pcapBytes, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "captures", Namespace: ns}, BinaryData: map[string][]byte{"capture.pcap": pcapBytes}})

	var sensors []*v1alpha1.CaptureSensor
	for _, name := range []string{"first", "second"} {
		cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.CaptureSensorSpec{
			Interfaces: []string{rx}, SnapLength: 65535,
			Ring:  v1alpha1.RingSpec{BlockSizeKiB: 256, Blocks: 16},
			Topic: v1alpha1.TopicSpec{Partitions: 3, Retention: &metav1.Duration{Duration: time.Hour}},
		}}
		deleteTopic(t, kcfg, ns+"."+name+".packets")
		sensors = append(sensors, cs)
	}
	mustCreate(t, c, sensors[0], sensors[1])
	for _, cs := range sensors {
		eventually(t, 3*time.Minute, cs.Name+" Ready and kstatus Current", func() error { return current(c, cs) })
	}
	if a, b := sensors[0].Status.MetricsPort, sensors[1].Status.MetricsPort; a == b || a == 0 || b == 0 {
		t.Fatalf("sensors on metrics ports %d and %d", a, b)
	}
	t.Logf("sensor ports: %s %d/%d, %s %d/%d", sensors[0].Name, sensors[0].Status.MetricsPort, sensors[0].Status.HealthPort,
		sensors[1].Name, sensors[1].Status.MetricsPort, sensors[1].Status.HealthPort)

	// A pipeline for each sensor: processors in the node's network, each on node ports of its own.
	ccfg := cassandratest.Config(t)
	mustCreate(t, c, cassandraCreds(t, ccfg, ns))
	var pipelines []*v1alpha1.PacketPipeline
	for _, cs := range sensors {
		keyspace := "e2e_" + sfx + "_" + cs.Name
		dropKeyspace(t, ccfg, keyspace)
		pipelines = append(pipelines, &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Name: cs.Name + "-flows", Namespace: ns},
			Spec: v1alpha1.PacketPipelineSpec{
				Source: v1alpha1.PipelineSource{Sensor: cs.Name},
				Sinks:  v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: keyspace, ReplicationFactor: 1}},
			}})
	}
	mustCreate(t, c, pipelines[0], pipelines[1])
	for _, pp := range pipelines {
		eventually(t, 3*time.Minute, pp.Name+" Ready and kstatus Current", func() error { return current(c, pp) })
	}
	ports := map[int32]string{}
	for _, o := range []struct {
		name            string
		metrics, health int32
	}{
		{sensors[0].Name, sensors[0].Status.MetricsPort, sensors[0].Status.HealthPort},
		{sensors[1].Name, sensors[1].Status.MetricsPort, sensors[1].Status.HealthPort},
		{pipelines[0].Name, pipelines[0].Status.MetricsPort, pipelines[0].Status.HealthPort},
		{pipelines[1].Name, pipelines[1].Status.MetricsPort, pipelines[1].Status.HealthPort},
	} {
		for _, p := range []int32{o.metrics, o.health} {
			if other, taken := ports[p]; taken || p == 0 {
				t.Fatalf("%s on node port %d, also %q's", o.name, p, other)
			}
			ports[p] = o.name
		}
	}
	t.Logf("pipeline ports: %s %d/%d, %s %d/%d", pipelines[0].Name, pipelines[0].Status.MetricsPort, pipelines[0].Status.HealthPort,
		pipelines[1].Name, pipelines[1].Status.MetricsPort, pipelines[1].Status.HealthPort)

	replay := &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Name: "replay", Namespace: ns}, Spec: v1alpha1.ReplayJobSpec{
		Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "captures", Key: "capture.pcap"}},
		Pace:   &v1alpha1.ReplayPace{PacketsPerSecond: ptr(int64(500))},
		Loops:  1,
		Target: v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: tx, NodeName: node}},
	}}
	mustCreate(t, c, replay)
	waitReplay(t, c, replay)
	for _, cs := range sensors {
		topic := ns + "." + cs.Name + ".packets"
		if got := countRecords(t, kcfg, topic, wantPackets); got != wantPackets {
			t.Errorf("sensor %s: topic %s holds %d records, file has %d packets", cs.Name, topic, got, wantPackets)
		}
	}
	for _, o := range []client.Object{replay, pipelines[0], pipelines[1], sensors[0], sensors[1]} {
		if err := c.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// Gone, not only terminating: the next test's pods wait for nothing of this one's on the node.
	eventually(t, 3*time.Minute, "every pod of the test gone", func() error {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left, %s first", len(pods.Items), pods.Items[0].Name)
		}
		return nil
	})
	for _, cs := range sensors {
		deleteTopic(t, kcfg, ns+"."+cs.Name+".packets")
	}
}

// readyCondition is what `kubectl get -o wide` and the Ready condition tell of a ReplayJob.
func readyCondition(c client.Client, rj *v1alpha1.ReplayJob) (*metav1.Condition, error) {
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(rj), rj); err != nil {
		return nil, err
	}
	r := meta.FindStatusCondition(rj.Status.Conditions, v1alpha1.ConditionReady)
	if r == nil {
		return nil, fmt.Errorf("no Ready condition yet")
	}
	return r, nil
}

// The real kubelet's reasons reach the ReplayJob's Ready condition within 30 s: a ConfigMap that does not
// exist, and a topic that does not exist on a Kafka the operator does not tend (the replayer's last log line,
// kept as the termination message). A missing topic on the operator's Kafka is created and the replay runs.
func TestReplayTroubleInStatus(t *testing.T) {
	c := cluster(t)
	kcfg := kafkatest.Plain(t)
	ns := namespace(t, c)
	pcapBytes, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata/http.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "captures", Namespace: ns}, BinaryData: map[string][]byte{"http.pcap": pcapBytes}})
	toTopic := func(name, cm, topic string, kafka *v1alpha1.KafkaConnection) *v1alpha1.ReplayJob {
		return &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: cm, Key: "http.pcap"}},
			Pace:   &v1alpha1.ReplayPace{TopSpeed: ptr(true)},
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: topic, Partitions: 3}},
			Kafka:  kafka,
		}}
	}
	missingTopic := ns + ".nowhere"
	createdTopic := ns + ".created"
	deleteTopic(t, kcfg, missingTopic)
	deleteTopic(t, kcfg, createdTopic)
	t.Cleanup(func() { deleteTopic(t, kcfg, createdTopic) })

	noCapture := toTopic("no-capture", "no-such-configmap", createdTopic, nil)
	// The operator's Kafka named explicitly: a Kafka the operator does not tend, as far as it can tell.
	noTopic := toTopic("no-topic", "captures", missingTopic, &v1alpha1.KafkaConnection{BootstrapServers: kcfg.Brokers})
	created := toTopic("created", "captures", createdTopic, nil)
	mustCreate(t, c, noCapture, noTopic, created)
	start := time.Now()

	eventually(t, 30*time.Second, "missing ConfigMap in the Ready condition", func() error {
		r, err := readyCondition(c, noCapture)
		if err != nil {
			return err
		}
		if r.Reason != "FailedMount" || !strings.Contains(r.Message, `configmap "no-such-configmap" not found`) || !strings.Contains(r.Message, "on node "+node) {
			return fmt.Errorf("Ready %s %s: %s", r.Status, r.Reason, r.Message)
		}
		t.Logf("after %s: %s: %s", time.Since(start).Round(time.Second), r.Reason, r.Message)
		return nil
	})
	eventually(t, 30*time.Second, "missing topic in the Ready condition", func() error {
		r, err := readyCondition(c, noTopic)
		if err != nil {
			return err
		}
		if r.Reason != "JobFailed" || !strings.Contains(r.Message, fmt.Sprintf("topic %q does not exist", missingTopic)) {
			return fmt.Errorf("Ready %s %s: %s", r.Status, r.Reason, r.Message)
		}
		t.Logf("after %s: %s: %s", time.Since(start).Round(time.Second), r.Reason, r.Message)
		return nil
	})
	waitReplay(t, c, created)
	if got := countRecords(t, kcfg, createdTopic, 10); got != 10 {
		t.Errorf("topic %s the operator created holds %d records, http.pcap has 10 packets", createdTopic, got)
	}
	if topicExists(t, kcfg, missingTopic) {
		t.Errorf("topic %s was created on a Kafka the operator does not tend", missingTopic)
	}
}
