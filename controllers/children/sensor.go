package children

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// ComponentSensor labels the pods of a CaptureSensor.
const ComponentSensor = "sensor"

// SensorTopic is the packets topic a sensor writes to.
func SensorTopic(cs *v1alpha1.CaptureSensor) string {
	if cs.Spec.Topic.Name != "" {
		return cs.Spec.Topic.Name
	}
	return cs.Namespace + "." + cs.Name + ".packets"
}

// SensorDaemonSetName is the name of the DaemonSet that runs a CaptureSensor.
func SensorDaemonSetName(cs *v1alpha1.CaptureSensor) string { return childName(cs.Name, "-sensor") }

// SensorPorts are the node ports a CaptureSensor's pods serve metrics and health on: the pair the operator
// chose and wrote in its status, or the first pair before it chose.
func SensorPorts(cs *v1alpha1.CaptureSensor) (metrics, health int32) {
	if cs.Status.MetricsPort != 0 && cs.Status.HealthPort != 0 {
		return cs.Status.MetricsPort, cs.Status.HealthPort
	}
	return MetricsPort, HealthPort
}

// SensorDaemonSet builds the DaemonSet that runs a CaptureSensor on every selected node.
func SensorDaemonSet(cs *v1alpha1.CaptureSensor, o Options) *appsv1.DaemonSet {
	s := cs.Spec
	metricsPort, healthPort := SensorPorts(cs)
	w := newWorkload(
		"sensor",
		"--interfaces="+strings.Join(s.Interfaces, ","),
		"--snaplen="+itoa(int64(s.SnapLength)),
		"--sample-rate="+itoa(int64(s.SampleRate)),
		"--ring-block-size-kb="+itoa(int64(s.Ring.BlockSizeKiB)),
		"--ring-blocks="+itoa(int64(s.Ring.Blocks)),
		"--fanout-group="+itoa(int64(s.Ring.FanoutGroup)),
		"--fanout-workers="+itoa(int64(s.Ring.FanoutWorkers)),
		"--buffer-packets="+itoa(int64(s.BufferPackets)),
		"--topic="+SensorTopic(cs),
		"--metrics-addr=:"+itoa(int64(metricsPort)),
		"--health-addr=:"+itoa(int64(healthPort)),
	)
	if s.Filter != "" {
		w.flag("--filter=" + s.Filter)
	}
	w.kafka(s.Kafka, o)
	ctr := w.container("sensor", o, "CaptureSensor", cs)
	serve(&ctr, metricsPort, healthPort)
	ctr.Resources = sensorResources(cs)
	// The sensor fits its rings (locked kernel memory, charged to the pod) to the limit, and refuses rings
	// of the spec's size that do not fit, rather than being OOM-killed at every start (sensor.MemoryLimitEnv).
	ctr.Env = append(ctr.Env, corev1.EnvVar{Name: "MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{
		ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: ctr.Name, Resource: "limits.memory"}}})
	ctr.SecurityContext = captureSecurityContext()

	pod := w.pod(ctr, s.NodeSelector, s.Tolerations)
	// The sensor captures the node's own interfaces, so it lives in the node's network namespace.
	pod.HostNetwork = true
	pod.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	pod.TerminationGracePeriodSeconds = ptr(int64(30))

	objMeta := childMeta(SensorDaemonSetName(cs), ComponentSensor, cs, "CaptureSensor")
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: objMeta,
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(ComponentSensor, cs.Name)},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			Template:       corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: objMeta.Labels}, Spec: pod},
		},
	}
}

// captureSecurityContext grants what AF_PACKET capture and BPF attachment need, and nothing more:
// NET_RAW opens packet sockets, NET_ADMIN sets promiscuous mode and fanout. Root inside the container is
// needed because Kubernetes does not raise added capabilities into the effective set of a non-root user.
func captureSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		Privileged:               ptr(false),
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsUser:                ptr(int64(0)),
		Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"},
			Add:  []corev1.Capability{"NET_RAW", "NET_ADMIN"},
		},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// maxAutoRingMiB is the largest ring the sensor sizes for itself from an interface's speed.
const maxAutoRingMiB = 64

// sensorResources sizes the sensor for its rings unless the spec says otherwise: the rings are locked
// kernel memory charged to the pod, so the memory limit must cover them or the sensor is OOM-killed.
func sensorResources(cs *v1alpha1.CaptureSensor) corev1.ResourceRequirements {
	if cs.Spec.Resources != nil {
		return *cs.Spec.Resources
	}
	blockKiB := int64(cs.Spec.Ring.BlockSizeKiB)
	if blockKiB == 0 {
		blockKiB = 1024 // the sensor's block for a ring of counted blocks (sensor/ringsize.go)
	}
	ringMiB := blockKiB * int64(cs.Spec.Ring.Blocks) * int64(len(cs.Spec.Interfaces)) / 1024
	if cs.Spec.Ring.Blocks == 0 {
		// Sized by the sensor from the node's interface speed: at most this (sensor/ringsize.go).
		ringMiB = maxAutoRingMiB * int64(len(cs.Spec.Interfaces))
	}
	if cs.Spec.Ring.FanoutGroup != 0 && cs.Spec.Ring.FanoutWorkers > 1 {
		// Each ring of a fanout group is that size. With one ring per CPU (no worker count) the node's
		// CPUs are not known here: the spec's resources are the way to cover them.
		ringMiB *= int64(cs.Spec.Ring.FanoutWorkers)
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: *resource.NewQuantity((128+ringMiB)<<20, resource.BinarySI),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: *resource.NewQuantity((512+ringMiB)<<20, resource.BinarySI),
		},
	}
}
