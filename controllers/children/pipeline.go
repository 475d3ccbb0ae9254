package children

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// ComponentProcessor labels the pods of a PacketPipeline.
const ComponentProcessor = "processor"

// PipelineDeploymentName is the name of the Deployment that runs a PacketPipeline's processors.
func PipelineDeploymentName(pp *v1alpha1.PacketPipeline) string {
	return childName(pp.Name, "-processor")
}

// ConsumerGroup is the Kafka consumer group a pipeline's processors share.
func ConsumerGroup(pp *v1alpha1.PacketPipeline) string {
	if pp.Spec.ConsumerGroup != "" {
		return pp.Spec.ConsumerGroup
	}
	return "capfleet." + pp.Namespace + "." + pp.Name
}

// FlowsTopic is the topic a pipeline publishes flow records to, when its Kafka sink is on.
func FlowsTopic(pp *v1alpha1.PacketPipeline) string {
	if k := pp.Spec.Sinks.Kafka; k != nil && k.Topic.Name != "" {
		return k.Topic.Name
	}
	return pp.Namespace + "." + pp.Name + ".flows"
}

// RecordsTopic is the topic a pipeline publishes decoded packet records to, when that sink is on.
func RecordsTopic(pp *v1alpha1.PacketPipeline) string {
	if k := pp.Spec.Sinks.PacketRecords; k != nil && k.Topic.Name != "" {
		return k.Topic.Name
	}
	return pp.Namespace + "." + pp.Name + ".records"
}

// PipelineDeployment builds the Deployment of a PacketPipeline's processors. sourceTopic is the packets
// topic already resolved (from the sensor the spec names, or the topic it gives).
func PipelineDeployment(pp *v1alpha1.PacketPipeline, sourceTopic string, o Options) *appsv1.Deployment {
	s := pp.Spec
	metricsPort, healthPort := PipelinePorts(pp, o.HostNetwork)
	w := newWorkload(
		"process",
		"--topic="+sourceTopic,
		"--group="+ConsumerGroup(pp),
		"--flow-active-timeout="+durationOr(s.Flows.ActiveTimeout, "30m0s"),
		"--flow-table-max="+itoa(int64(s.Flows.MaxFlows)),
		"--metrics-addr=:"+itoa(int64(metricsPort)),
		"--health-addr=:"+itoa(int64(healthPort)),
	)
	if s.Flows.IdleTimeout != nil {
		w.flag("--flow-idle-timeout=" + s.Flows.IdleTimeout.Duration.String())
	}
	if s.Source.Sensor != "" {
		w.flag("--sensor=" + s.Source.Sensor)
	}
	if s.Filter != "" {
		w.flag("--filter=" + s.Filter)
	}
	if s.DisplayFilter != "" {
		w.flag("--display-filter=" + s.DisplayFilter)
	}
	if s.Flows.Filter != "" {
		w.flag("--flow-filter=" + s.Flows.Filter)
	}
	if len(s.Flows.Features) > 0 {
		names := make([]string, len(s.Flows.Features))
		for i, f := range s.Flows.Features {
			names[i] = string(f)
		}
		w.flag("--flow-features=" + strings.Join(names, ","))
	}
	w.kafka(s.Kafka, o)
	if c := s.Sinks.Cassandra; c != nil {
		if c.Packets {
			w.flag("--store-packets", "--packet-ttl="+durationOr(c.PacketTTL, "168h0m0s"))
		}
		if c.Flows {
			w.flag("--store-flows", "--flow-ttl="+durationOr(c.FlowTTL, "720h0m0s"))
		}
		w.flag("--keyspace="+c.Keyspace,
			fmt.Sprintf(`--replication={"class":"SimpleStrategy","replication_factor":%d}`, c.ReplicationFactor))
		cargs, csecret := cassandraArgs(c.Connection, o.Cassandra)
		w.flag(cargs...)
		w.mountSecret("cassandra", csecret, cassandraSecretDir)
	}
	if s.Sinks.Kafka != nil {
		w.flag("--flows-topic=" + FlowsTopic(pp))
	}
	if s.Sinks.PacketRecords != nil {
		w.flag("--records-topic=" + RecordsTopic(pp))
	}
	if t := s.Traffic; t != nil {
		w.flag("--traffic-step="+durationOr(t.Step, "1s"), "--edge-window="+durationOr(t.EdgeWindow, "1m0s"),
			"--rollup-ttl="+durationOr(t.TTL, "720h0m0s"))
	}
	if x := s.Sinks.IPFIX; x != nil {
		w.flag("--ipfix="+strings.Join(x.Collectors, ","), "--ipfix-domain="+itoa(x.ObservationDomain))
	}
	ctr := w.container("processor", o, "PacketPipeline", pp)
	serve(&ctr, metricsPort, healthPort)
	ctr.Resources = workloadResources(s.Resources, "200m", 256, 1024)
	ctr.SecurityContext = restrictedSecurityContext()

	pod := w.pod(ctr, s.NodeSelector, s.Tolerations)
	pod.HostNetwork = o.HostNetwork
	pod.SecurityContext = nonRootPodSecurity()
	pod.DNSPolicy = dnsPolicy(o.HostNetwork)
	pod.TerminationGracePeriodSeconds = ptr(int64(60))

	objMeta := childMeta(PipelineDeploymentName(pp), ComponentProcessor, pp, "PacketPipeline")
	maxUnavailable := intstr.FromInt32(1)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objMeta,
		Spec: appsv1.DeploymentSpec{
			Replicas: s.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(ComponentProcessor, pp.Name)},
			// A consumer group rebalances on every member change; one replica at a time keeps that calm.
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: ptr(intstr.FromInt32(0))},
			},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: objMeta.Labels}, Spec: pod},
		},
	}
}

func durationOr(d *metav1.Duration, def string) string {
	if d == nil {
		return def
	}
	return d.Duration.String()
}
