// Package children builds the Kubernetes objects capfleet resources own. Each builder is a pure function:
// a resource and the operator's options in, a complete object out, ready for server-side apply.
package children

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// Options are the operator-wide settings every workload inherits unless its resource overrides them.
type Options struct {
	// Image runs every workload, with the matching subcommand.
	Image string
	// ImagePullPolicy of that image.
	ImagePullPolicy corev1.PullPolicy
	// Kafka is the default Kafka connection.
	Kafka KafkaDefaults
	// Cassandra is the default Cassandra connection.
	Cassandra CassandraDefaults
	// HostNetwork runs every workload in its node's network namespace, not only those that must (sensors,
	// replays onto an interface): for nodes without a pod network, like the one-machine local cluster.
	HostNetwork bool
	// StatsTopic is where workloads publish heartbeats; empty keeps each workload's default.
	StatsTopic string
}

// KafkaDefaults is the operator-wide Kafka connection.
type KafkaDefaults struct {
	Brokers []string
	TLS     bool
	// SecretName, when set, names a Secret looked up in each resource's own namespace.
	SecretName string
}

// CassandraDefaults is the operator-wide Cassandra connection.
type CassandraDefaults struct {
	Hosts      []string
	Port       int32
	TLS        bool
	SecretName string
}

// Every workload container ends with its error as the last line of its log ("capfleet: ..."); with
// TerminationMessageFallbackToLogsOnError the kubelet keeps that line as the termination message, which the
// operator copies into the resource's status.

// Ports and paths the workloads and the operator agree on.
const (
	MetricsPort        = 9090
	HealthPort         = 9091
	kafkaSecretDir     = "/etc/capfleet/kafka"
	cassandraSecretDir = "/etc/capfleet/cassandra"
	captureDir         = "/capture"
	// FieldManager owns every field capfleet applies.
	FieldManager = "capfleet-operator"
)

// Labels every child carries; the selector ones never change over a child's life.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
)

// selectorLabels identify the pods of one resource's workload.
func selectorLabels(component, instance string) map[string]string {
	return map[string]string{LabelName: "capfleet", LabelComponent: component, LabelInstance: instance}
}

// PodSelector selects the pods of one resource's workload.
func PodSelector(component, instance string) map[string]string {
	return selectorLabels(component, instance)
}

// commonLabels are the selector labels plus those that say who manages the object.
func commonLabels(component, instance string) map[string]string {
	l := selectorLabels(component, instance)
	l[LabelManagedBy] = FieldManager
	l[LabelPartOf] = "capfleet"
	return l
}

// endpoint is where a workload connects: its hosts, whether over TLS, and the Secret with its credentials.
type endpoint struct {
	hosts  []string
	tls    bool
	secret string
}

// over is e with what a resource's own connection sets taking precedence; what it leaves unset stays.
func (e endpoint) over(hosts []string, tls *bool, secret *corev1.LocalObjectReference) endpoint {
	if len(hosts) > 0 {
		e.hosts = hosts
	}
	if tls != nil {
		e.tls = *tls
	}
	if secret != nil && secret.Name != "" {
		e.secret = secret.Name
	}
	return e
}

// kafkaArgs turns a resource's Kafka connection, over the defaults, into flags, and says which Secret to mount.
func kafkaArgs(c *v1alpha1.KafkaConnection, d KafkaDefaults) (args []string, secret string) {
	e := endpoint{d.Brokers, d.TLS, d.SecretName}
	if c != nil {
		e = e.over(c.BootstrapServers, c.TLS, c.SecretRef)
	}
	if len(e.hosts) > 0 {
		args = append(args, "--kafka-brokers="+strings.Join(e.hosts, ","))
	}
	if e.tls {
		args = append(args, "--kafka-tls")
	}
	if e.secret != "" {
		args = append(args, "--kafka-secret-dir="+kafkaSecretDir)
	}
	return args, e.secret
}

// cassandraArgs does for Cassandra what kafkaArgs does for Kafka.
func cassandraArgs(c *v1alpha1.CassandraConnection, d CassandraDefaults) (args []string, secret string) {
	e, port := endpoint{d.Hosts, d.TLS, d.SecretName}, d.Port
	if c != nil {
		e = e.over(c.ContactPoints, c.TLS, c.SecretRef)
		if c.Port != nil {
			port = *c.Port
		}
	}
	if len(e.hosts) > 0 {
		args = append(args, "--cassandra-hosts="+strings.Join(e.hosts, ","))
	}
	if port != 0 {
		args = append(args, "--cassandra-port="+itoa(int64(port)))
	}
	if e.tls {
		args = append(args, "--cassandra-tls")
	}
	if e.secret != "" {
		args = append(args, "--cassandra-secret-dir="+cassandraSecretDir)
	}
	return args, e.secret
}

// downwardEnv tells a workload which pod and node it is, and which resource it serves, for its records and
// the heartbeats the operator folds into that resource's status.
func downwardEnv(kind string, owner metav1.Object) []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	return []corev1.EnvVar{
		field("NODE_NAME", "spec.nodeName"), field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"),
		{Name: "CAPFLEET_RESOURCE_KIND", Value: kind},
		{Name: "CAPFLEET_RESOURCE_NAMESPACE", Value: owner.GetNamespace()},
		{Name: "CAPFLEET_RESOURCE_NAME", Value: owner.GetName()},
		{Name: "CAPFLEET_RESOURCE_UID", Value: string(owner.GetUID())},
	}
}

// statsArgs points a workload's heartbeats at the operator's stats topic.
func statsArgs(o Options) []string {
	if o.StatsTopic == "" {
		return nil
	}
	return []string{"--stats-topic=" + o.StatsTopic}
}

// PipelinePorts are the metrics and health ports of a pipeline's processors. In their own network
// namespace they use MetricsPort and HealthPort; in the node's, the pair the operator chose for the
// pipeline and wrote in its status (see node_ports.go in the controllers), or 9290/9291 before it chose,
// clear of the sensors', so that sensors and processors of several pipelines share a node. Replays in the
// node's network serve none.
func PipelinePorts(pp *v1alpha1.PacketPipeline, hostNetwork bool) (metrics, health int32) {
	return hostPorts(hostNetwork, pp.Status.MetricsPort, pp.Status.HealthPort, 9290)
}

// hostPorts are a workload's metrics and health ports: MetricsPort and HealthPort in a network of its
// own; in the node's, the pair in its status, or first and the next port before the operator chose.
func hostPorts(hostNetwork bool, statusMetrics, statusHealth, first int32) (metrics, health int32) {
	switch {
	case !hostNetwork:
		return MetricsPort, HealthPort
	case statusMetrics != 0 && statusHealth != 0:
		return statusMetrics, statusHealth
	}
	return first, first + 1
}

// probes check the workload's health server: alive while it serves, ready once its pipeline is up.
func probes(health int32) (liveness, readiness *corev1.Probe) {
	get := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intOrString(int(health)), Scheme: corev1.URISchemeHTTP}}
	}
	liveness = &corev1.Probe{ProbeHandler: get("/healthz"), PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
	readiness = &corev1.Probe{ProbeHandler: get("/readyz"), PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 3}
	return liveness, readiness
}

// ports name the metrics and health ports so Prometheus and probes can find them.
func ports(metrics, health int32) []corev1.ContainerPort {
	return []corev1.ContainerPort{
		{Name: "metrics", ContainerPort: metrics, Protocol: corev1.ProtocolTCP},
		{Name: "health", ContainerPort: health, Protocol: corev1.ProtocolTCP},
	}
}

// childName is the owner's name with a suffix. When that would pass 63 characters (a label value, and what
// the controllers that create pods from the child need), the name is cut and a hash of the whole owner name
// takes the cut's place, so two long names sharing a prefix never make the same child.
func childName(owner, suffix string) string {
	const max = 63
	if len(owner)+len(suffix) <= max {
		return owner + suffix
	}
	sum := sha256.Sum256([]byte(owner))
	tag := "-" + hex.EncodeToString(sum[:])[:8]
	return strings.TrimRight(owner[:max-len(suffix)-len(tag)], "-.") + tag + suffix
}
