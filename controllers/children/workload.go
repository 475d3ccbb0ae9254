package children

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// workload gathers the flags and volumes of a workload's one container while its builder goes through the
// spec, so that what every workload needs (a writable /tmp, Kafka, heartbeats, its identity) is built once.
type workload struct {
	args    []string
	volumes []corev1.Volume
	mounts  []corev1.VolumeMount
}

// newWorkload starts a workload with its first flags and a writable /tmp, its root file system being read-only.
func newWorkload(args ...string) *workload {
	tmp, tmpMount := tmpVolume()
	return &workload{args: args, volumes: []corev1.Volume{tmp}, mounts: []corev1.VolumeMount{tmpMount}}
}

func tmpVolume() (corev1.Volume, corev1.VolumeMount) {
	return corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}
}

// flag adds flags.
func (w *workload) flag(args ...string) { w.args = append(w.args, args...) }

// kafka connects the workload to its Kafka, over the operator's default, and sends its heartbeats to the
// stats topic there: every workload beats, whatever else it does with Kafka.
func (w *workload) kafka(c *v1alpha1.KafkaConnection, o Options) {
	args, secret := kafkaArgs(c, o.Kafka)
	w.flag(args...)
	w.flag(statsArgs(o)...)
	w.mountSecret("kafka", secret, kafkaSecretDir)
}

// mount adds a volume, read-only at dir.
func (w *workload) mount(v corev1.Volume, dir string) {
	w.volumes = append(w.volumes, v)
	w.mounts = append(w.mounts, corev1.VolumeMount{Name: v.Name, MountPath: dir, ReadOnly: true})
}

// mountSecret mounts a Secret read-only at dir, unless no Secret is named. Its files are readable by the owner
// alone, so its values reach the process only as files.
func (w *workload) mountSecret(name, secret, dir string) {
	if secret == "" {
		return
	}
	mode := int32(0o400)
	w.mount(corev1.Volume{
		Name:         name,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, DefaultMode: &mode}},
	}, dir)
}

// container is the workload's one container: the operator's image run with the workload's flags, told which
// resource it serves (kind and owner). Its last log line, its error, is kept as its termination message.
func (w *workload) container(name string, o Options, kind string, owner metav1.Object) corev1.Container {
	return corev1.Container{
		Name:                     name,
		Image:                    o.Image,
		ImagePullPolicy:          o.ImagePullPolicy,
		Args:                     w.args,
		Env:                      downwardEnv(kind, owner),
		VolumeMounts:             w.mounts,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// pod runs the workload's container on the nodes its resource selects. It carries no service account token:
// no workload talks to the API server.
func (w *workload) pod(ctr corev1.Container, nodeSelector map[string]string, tolerations []corev1.Toleration) corev1.PodSpec {
	return corev1.PodSpec{
		NodeSelector:                 nodeSelector,
		Tolerations:                  tolerations,
		AutomountServiceAccountToken: ptr(false),
		Volumes:                      w.volumes,
		Containers:                   []corev1.Container{ctr},
	}
}

// serve has a container serve metrics and health on the given ports, probed on health: alive while it
// serves, ready once its pipeline is up.
func serve(c *corev1.Container, metrics, health int32) {
	c.Ports = ports(metrics, health)
	c.LivenessProbe, c.ReadinessProbe = probes(health)
}

// childMeta names a child of owner, a resource of the given kind, labels it as the component's workload and
// makes owner its controller.
func childMeta(name, component string, owner metav1.Object, kind string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: owner.GetNamespace(), Labels: commonLabels(component, owner.GetName()),
		OwnerReferences: []metav1.OwnerReference{ownerRef(owner, kind)},
	}
}
