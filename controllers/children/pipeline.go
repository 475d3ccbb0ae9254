package children

import (
	"fmt"

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

// PipelineDeployment builds the Deployment of a PacketPipeline's processors. sourceTopic is the packets
// topic already resolved (from the sensor the spec names, or the topic it gives).
func PipelineDeployment(pp *v1alpha1.PacketPipeline, sourceTopic string, o Options) *appsv1.Deployment {
	s := pp.Spec
	metricsPort, healthPort := PipelinePorts(pp, o.HostNetwork)
	args := []string{
		"process",
		"--topic=" + sourceTopic,
		"--group=" + ConsumerGroup(pp),
		"--flow-idle-timeout=" + durationOr(s.Flows.IdleTimeout, "60s"),
		"--flow-active-timeout=" + durationOr(s.Flows.ActiveTimeout, "30m0s"),
		"--flow-table-max=" + itoa(int64(s.Flows.MaxFlows)),
		"--metrics-addr=:" + itoa(int64(metricsPort)),
		"--health-addr=:" + itoa(int64(healthPort)),
	}
	if s.Source.Sensor != "" {
		args = append(args, "--sensor="+s.Source.Sensor)
	}
	if s.Filter != "" {
		args = append(args, "--filter="+s.Filter)
	}
	if s.DisplayFilter != "" {
		args = append(args, "--display-filter="+s.DisplayFilter)
	}
	if s.Flows.Filter != "" {
		args = append(args, "--flow-filter="+s.Flows.Filter)
	}
	kargs, ksecret := kafkaArgs(s.Kafka, o.Kafka)
	args = append(args, kargs...)
	args = append(args, statsArgs(o)...)

	tmp, tmpMount := tmpVolume()
	volumes, mounts := []corev1.Volume{tmp}, []corev1.VolumeMount{tmpMount}
	volumes, mounts = mountSecret(volumes, mounts, "kafka", ksecret, kafkaSecretDir)
	if c := s.Sinks.Cassandra; c != nil {
		if c.Packets {
			args = append(args, "--store-packets", "--packet-ttl="+durationOr(c.PacketTTL, "168h0m0s"))
		}
		if c.Flows {
			args = append(args, "--store-flows", "--flow-ttl="+durationOr(c.FlowTTL, "720h0m0s"))
		}
		args = append(args, "--keyspace="+c.Keyspace,
			fmt.Sprintf(`--replication={"class":"SimpleStrategy","replication_factor":%d}`, c.ReplicationFactor))
		cargs, csecret := cassandraArgs(c.Connection, o.Cassandra)
		args = append(args, cargs...)
		volumes, mounts = mountSecret(volumes, mounts, "cassandra", csecret, cassandraSecretDir)
	}
	if s.Sinks.Kafka != nil {
		args = append(args, "--flows-topic="+FlowsTopic(pp))
	}

	liveness, readiness := probes(healthPort)
	labels := commonLabels(ComponentProcessor, pp.Name)
	maxUnavailable := intstr.FromInt32(1)
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: PipelineDeploymentName(pp), Namespace: pp.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{ownerRef(pp, "PacketPipeline")},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: s.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(ComponentProcessor, pp.Name)},
			// A consumer group rebalances on every member change; one replica at a time keeps that calm.
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: ptr(intstr.FromInt32(0))},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   o.HostNetwork,
					SecurityContext:               nonRootPodSecurity(),
					DNSPolicy:                     dnsPolicy(o.HostNetwork),
					NodeSelector:                  s.NodeSelector,
					Tolerations:                   s.Tolerations,
					AutomountServiceAccountToken:  ptr(false),
					TerminationGracePeriodSeconds: ptr(int64(60)),
					Volumes:                       volumes,
					Containers: []corev1.Container{{
						Name:                     "processor",
						Image:                    o.Image,
						ImagePullPolicy:          o.ImagePullPolicy,
						Args:                     args,
						Env:                      downwardEnv("PacketPipeline", pp),
						Ports:                    ports(metricsPort, healthPort),
						LivenessProbe:            liveness,
						ReadinessProbe:           readiness,
						Resources:                workloadResources(s.Resources, "200m", 256, 1024),
						VolumeMounts:             mounts,
						SecurityContext:          restrictedSecurityContext(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
				},
			},
		},
	}
}

func durationOr(d *metav1.Duration, def string) string {
	if d == nil {
		return def
	}
	return d.Duration.String()
}
