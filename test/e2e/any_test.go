//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/pcapfile"
)

// A sensor on "any" sees each replayed packet twice, as tcpdump -i any does: leaving the veth end the replay
// sends on and arriving at the other. Both copies, framed as Linux cooked v2, reach the topic, and the pipeline
// decodes and stores them: what `capfleet query packets` gives back is a link type 276 capture tcpdump reads.
func TestSensorOnAny(t *testing.T) {
	c := cluster(t)
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ctx := context.Background()
	capture := filepath.Join(repoRoot(t), "testdata/ftp-bruteforce.pcap")
	wantPackets := commandCount(t, func(string) bool { return true }, "tcpdump", "-nr", capture)

	ns := namespace(t, c)
	sfx := strings.TrimPrefix(ns, "e2e-")
	tx, rx := "cf"+sfx+"tx", "cf"+sfx+"rx"
	vethPair(t, tx, rx)
	keyspace := "e2e_any_" + sfx
	dropKeyspace(t, ccfg, keyspace)
	topic := ns + ".any.packets"
	deleteTopic(t, kcfg, topic)
	pcapBytes, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c,
		cassandraCreds(t, ccfg, ns),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "captures", Namespace: ns}, BinaryData: map[string][]byte{"capture.pcap": pcapBytes}})

	// The node's own traffic passes on "any" too: the filter keeps the capture's network only.
	sensor := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Name: "any", Namespace: ns}, Spec: v1alpha1.CaptureSensorSpec{
		Interfaces: []string{"any"}, Filter: "net 192.168.56.0/24", SnapLength: 65535,
		Ring:  v1alpha1.RingSpec{BlockSizeKiB: 256, Blocks: 16},
		Topic: v1alpha1.TopicSpec{Partitions: 3, Retention: &metav1.Duration{Duration: time.Hour}},
	}}
	pipeline := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Name: "store", Namespace: ns}, Spec: v1alpha1.PacketPipelineSpec{
		Source:   v1alpha1.PipelineSource{Sensor: sensor.Name},
		Replicas: ptr(int32(1)),
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
		Pace:   &v1alpha1.ReplayPace{PacketsPerSecond: ptr(int64(500))},
		Loops:  1,
		Target: v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: tx, NodeName: node}},
	}}
	mustCreate(t, c, replay)
	waitReplay(t, c, replay)

	if got := countRecords(t, kcfg, topic, 2*wantPackets); got != 2*wantPackets {
		t.Errorf("topic %s holds %d records; %d packets replayed, each seen leaving %s and entering %s", topic, got, wantPackets, tx, rx)
	}
	out := filepath.Join(t.TempDir(), "stored.pcap")
	eventually(t, 2*time.Minute, "both copies of every packet stored", func() error {
		if _, err := runQuery(t, ccfg, "packets", "--keyspace", keyspace, "--sensor", sensor.Name, "--from", start.UTC().Format(time.RFC3339), "--format", "pcap", "-w", out); err != nil {
			return err
		}
		if n := commandCount(t, func(string) bool { return true }, "tcpdump", "-nr", out); n != 2*wantPackets {
			return fmt.Errorf("%d packets stored, want %d", n, 2*wantPackets)
		}
		return nil
	})
	r, err := pcapfile.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		pk, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if pk.LinkType != linktype.LinuxSLL2 {
			t.Fatalf("stored packet of link type %v, want Linux SLL2", pk.LinkType)
		}
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pipeline), pipeline); err == nil && pipeline.Status.DecodeErrors != 0 {
		t.Errorf("the pipeline could not decode %d packets", pipeline.Status.DecodeErrors)
	}
	for _, o := range []client.Object{replay, pipeline, sensor} {
		if err := c.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// The processor holds node ports the next test's needs.
	eventually(t, 3*time.Minute, "no capfleet pods left", func() error {
		if n := len(podsOf(t, c, ns, "")); n != 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}
