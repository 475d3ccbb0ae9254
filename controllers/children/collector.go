package children

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// ComponentCollector labels the pods of a FlowCollector.
const ComponentCollector = "collector"

// CollectorName is the name of a FlowCollector's Deployment and of its Service.
func CollectorName(fc *v1alpha1.FlowCollector) string { return childName(fc.Name, "-collector") }

// CollectorPorts are the metrics and health ports of a collector: the usual pair in a network of its own;
// in the node's, the pair the operator chose for the collector and wrote in its status (node_ports.go in
// the controllers), or 9292/9293 before it chose.
func CollectorPorts(fc *v1alpha1.FlowCollector, hostNetwork bool) (metrics, health int32) {
	return hostPorts(hostNetwork, fc.Status.MetricsPort, fc.Status.HealthPort, CollectorHostPort)
}

// CollectorHostPort is the first metrics port of collectors in their node's network, clear of the
// sensors' (9090) and the processors' (9290).
const CollectorHostPort = 9292

// CollectorDeployment runs `capfleet collect` for a FlowCollector.
func CollectorDeployment(fc *v1alpha1.FlowCollector, o Options) *appsv1.Deployment {
	s := fc.Spec
	metricsPort, healthPort := CollectorPorts(fc, o.HostNetwork)
	st := s.Store
	w := newWorkload(
		"collect",
		"--listen=:"+itoa(int64(collectorPort(fc))),
		"--template-timeout="+durationOr(s.TemplateTimeout, "30m0s"),
		"--flow-ttl="+durationOr(st.FlowTTL, "720h0m0s"),
		"--keyspace="+or(st.Keyspace, "capfleet"),
		fmt.Sprintf(`--replication={"class":"SimpleStrategy","replication_factor":%d}`, max(st.ReplicationFactor, 1)),
		"--metrics-addr=:"+itoa(int64(metricsPort)),
		"--health-addr=:"+itoa(int64(healthPort)),
	)
	cargs, csecret := cassandraArgs(st.Connection, o.Cassandra)
	w.flag(cargs...)
	w.mountSecret("cassandra", csecret, cassandraSecretDir)
	w.kafka(s.Kafka, o)
	ctr := w.container("collector", o, "FlowCollector", fc)
	serve(&ctr, metricsPort, healthPort)
	ctr.Ports = append(ctr.Ports, corev1.ContainerPort{Name: "netflow", ContainerPort: collectorPort(fc), Protocol: corev1.ProtocolUDP})
	ctr.Resources = workloadResources(s.Resources, "200m", 128, 512)
	ctr.SecurityContext = restrictedSecurityContext()

	pod := w.pod(ctr, s.NodeSelector, s.Tolerations)
	pod.HostNetwork = o.HostNetwork
	pod.SecurityContext = nonRootPodSecurity()
	pod.DNSPolicy = dnsPolicy(o.HostNetwork)

	objMeta := childMeta(CollectorName(fc), ComponentCollector, fc, "FlowCollector")
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objMeta,
		Spec: appsv1.DeploymentSpec{
			Replicas: s.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(ComponentCollector, fc.Name)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: objMeta.Labels}, Spec: pod},
		},
	}
}

// CollectorService is the UDP Service exporters send to. Session affinity by client address keeps each
// exporter on one pod: templates are per exporter and must reach the pod that decodes its data.
func CollectorService(fc *v1alpha1.FlowCollector) *corev1.Service {
	typ := fc.Spec.ServiceType
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	port := collectorPort(fc)
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: childMeta(CollectorName(fc), ComponentCollector, fc, "FlowCollector"),
		Spec: corev1.ServiceSpec{
			Type:            typ,
			Selector:        selectorLabels(ComponentCollector, fc.Name),
			SessionAffinity: corev1.ServiceAffinityClientIP,
			Ports: []corev1.ServicePort{{
				Name: "netflow", Protocol: corev1.ProtocolUDP, Port: port, TargetPort: intstr.FromInt32(port),
			}},
		},
	}
}

func collectorPort(fc *v1alpha1.FlowCollector) int32 {
	if fc.Spec.Port == 0 {
		return 2055
	}
	return fc.Spec.Port
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
