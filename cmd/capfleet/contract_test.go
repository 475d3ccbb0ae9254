package main

import (
	"strings"
	"testing"
	stdtime "time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// The operator's workloads run this binary with the arguments the child builders write; every one of them
// must be a flag the subcommand knows, or the pods crash-loop on a cluster.
func TestChildArgumentsAreFlagsTheSubcommandsKnow(t *testing.T) {
	o := children.Options{
		Image:     "capfleet:test",
		Kafka:     children.KafkaDefaults{Brokers: []string{"k:9092"}, TLS: true, SecretName: "kafka"},
		Cassandra: children.CassandraDefaults{Hosts: []string{"c"}, Port: 9042, TLS: true, SecretName: "cass"},
	}
	om := metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "u"}
	d := func(s string) *metav1.Duration {
		dd, _ := stdtime.ParseDuration(s)
		return &metav1.Duration{Duration: dd}
	}
	cs := &v1alpha1.CaptureSensor{ObjectMeta: om, Spec: v1alpha1.CaptureSensorSpec{
		Interfaces: []string{"eth0", "eth1"}, Filter: "tcp", SnapLength: 1514, SampleRate: 2, BufferPackets: 10,
		Ring: v1alpha1.RingSpec{BlockSizeKiB: 1024, Blocks: 8, FanoutGroup: 3},
	}}
	mult, pps := 1.5, int64(100)
	replays := []*v1alpha1.ReplayJob{
		{ObjectMeta: om, Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "c", Key: "a.pcap"}},
			Pace:   &v1alpha1.ReplayPace{Multiplier: &mult}, Loops: 2,
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{}},
		}},
		{ObjectMeta: om, Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{URL: &v1alpha1.URLSource{URL: "https://h/a.pcap", SHA256: strings.Repeat("a", 64)}},
			Pace:   &v1alpha1.ReplayPace{PacketsPerSecond: &pps},
			Target: v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: "eth0", NodeName: "n"}},
		}},
		{ObjectMeta: om, Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{Secret: &v1alpha1.KeyReference{Name: "c", Key: "a.pcap"}},
			Pace:   &v1alpha1.ReplayPace{TopSpeed: new(bool)},
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: "t"}},
		}},
	}
	pp := &v1alpha1.PacketPipeline{ObjectMeta: om, Spec: v1alpha1.PacketPipelineSpec{
		Source: v1alpha1.PipelineSource{Sensor: "s"}, Filter: "udp",
		Flows: v1alpha1.FlowSettings{IdleTimeout: d("30s"), ActiveTimeout: d("5m"), MaxFlows: 10},
		Sinks: v1alpha1.PipelineSinks{
			Cassandra: &v1alpha1.CassandraSink{Packets: true, Flows: true, PacketTTL: d("1h"), FlowTTL: d("2h"), Keyspace: "k", ReplicationFactor: 1},
			Kafka:     &v1alpha1.KafkaFlowSink{},
			IPFIX:     &v1alpha1.IPFIXFlowSink{Collectors: []string{"nfcapd:4739", "[::1]:2055"}, ObservationDomain: 4294967295},
		},
	}}

	var containers []corev1.Container
	containers = append(containers, children.SensorDaemonSet(cs, o).Spec.Template.Spec.Containers...)
	for _, rj := range replays {
		containers = append(containers, children.ReplayJobObject(rj, o).Spec.Template.Spec.Containers...)
	}
	containers = append(containers, children.PipelineDeployment(pp, "ns.s.packets", o).Spec.Template.Spec.Containers...)
	fc := &v1alpha1.FlowCollector{ObjectMeta: om, Spec: v1alpha1.FlowCollectorSpec{Port: 4739, TemplateTimeout: d("10m"),
		Store: v1alpha1.FlowCollectorStore{FlowTTL: d("24h"), Keyspace: "k", ReplicationFactor: 3}}}
	containers = append(containers, children.CollectorDeployment(fc, o).Spec.Template.Spec.Containers...)

	for _, c := range containers {
		name := c.Args[0]
		t.Run(name, func(t *testing.T) {
			cmd := subcommand(name)
			if cmd == nil {
				t.Fatalf("no subcommand %q", name)
			}
			if err := cmd.ParseFlags(c.Args[1:]); err != nil {
				t.Fatalf("%s rejects the operator's arguments %v: %v", name, c.Args[1:], err)
			}
			if rest := cmd.Flags().Args(); len(rest) != 0 {
				t.Fatalf("%s left arguments unparsed: %v", name, rest)
			}
		})
	}
}

func subcommand(name string) *cobra.Command {
	for _, c := range subcommands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}
