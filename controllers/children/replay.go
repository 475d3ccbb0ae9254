package children

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// ComponentReplay labels the pods of a ReplayJob.
const ComponentReplay = "replay"

// ReplayTopic is the topic a ReplayJob with a topic target writes to.
func ReplayTopic(rj *v1alpha1.ReplayJob) string {
	if t := rj.Spec.Target.Topic; t != nil && t.Name != "" {
		return t.Name
	}
	return rj.Namespace + "." + rj.Name + ".packets"
}

// ReplayJobObject builds the Job that runs a ReplayJob. A Job's pod template cannot change, so the Job's
// name carries a hash of what it runs: a spec change makes a new Job, and the controller removes the old one.
func ReplayJobObject(rj *v1alpha1.ReplayJob, o Options) *batchv1.Job {
	s := rj.Spec
	w := newWorkload(append([]string{"replay"}, replaySourceArgs(s.Source)...)...)
	w.flag(paceArgs(s.Pace)...)
	hostNetwork := o.HostNetwork || s.Target.Interface != nil // sending on a node's interface needs its network namespace
	// In the node's network a fixed metrics port would let only one replay run per node at a time (the
	// scheduler keeps the others pending for the port); a replay's figures reach its status by heartbeat, so
	// there it serves no /metrics and claims no port.
	var containerPorts []corev1.ContainerPort
	metricsAddr := ""
	if !hostNetwork {
		metricsAddr = ":" + itoa(MetricsPort)
		containerPorts = ports(MetricsPort, HealthPort)[:1]
	}
	w.flag("--loop="+itoa(int64(s.Loops)), "--metrics-addr="+metricsAddr)
	if v, ok := captureVolume(s.Source); ok {
		w.mount(v, captureDir)
	}

	security := restrictedSecurityContext()
	var affinity *corev1.Affinity
	if it := s.Target.Interface; it != nil {
		w.flag("--interface=" + it.Name)
		// Sending on a node's interface needs a raw socket there.
		affinity = pinToNode(it.NodeName)
		security = &corev1.SecurityContext{
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsUser:                ptr(int64(0)),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	} else {
		w.flag("--topic=" + ReplayTopic(rj))
	}
	// Kafka carries the packets of a topic replay and the heartbeats of every replay.
	w.kafka(s.Kafka, o)
	ctr := w.container("replay", o, "ReplayJob", rj)
	ctr.Ports = containerPorts
	ctr.Resources = workloadResources(s.Resources, "100m", 64, 256)
	ctr.SecurityContext = security
	pod := w.pod(ctr, s.NodeSelector, s.Tolerations)
	pod.HostNetwork = hostNetwork
	pod.DNSPolicy = dnsPolicy(hostNetwork)
	pod.SecurityContext = nonRootPodSecurity()
	pod.RestartPolicy = corev1.RestartPolicyNever
	pod.Affinity = affinity

	// The name waits for the template's hash.
	objMeta := childMeta("", ComponentReplay, rj, "ReplayJob")
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: objMeta,
		Spec: batchv1.JobSpec{
			BackoffLimit:            s.BackoffLimit,
			TTLSecondsAfterFinished: s.TTLSecondsAfterFinished,
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: objMeta.Labels}, Spec: pod},
		},
	}
	job.Name = childName(rj.Name, "-replay-"+templateHash(job.Spec.Template))
	return job
}

// replaySourceArgs points the replayer at the mounted file or the URL to fetch.
func replaySourceArgs(src v1alpha1.ReplaySource) []string {
	switch {
	case src.ConfigMap != nil:
		return []string{"--file=" + path.Join(captureDir, src.ConfigMap.Key)}
	case src.Secret != nil:
		return []string{"--file=" + path.Join(captureDir, src.Secret.Key)}
	case src.PersistentVolumeClaim != nil:
		return []string{"--file=" + path.Join(captureDir, src.PersistentVolumeClaim.Path)}
	case src.URL != nil:
		return []string{"--url=" + src.URL.URL, "--sha256=" + src.URL.SHA256}
	}
	return nil
}

// captureVolume mounts the capture file's ConfigMap, Secret or PersistentVolumeClaim read-only.
func captureVolume(src v1alpha1.ReplaySource) (corev1.Volume, bool) {
	v := corev1.Volume{Name: "capture"}
	switch {
	case src.ConfigMap != nil:
		v.ConfigMap = &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: src.ConfigMap.Name},
			Items:                []corev1.KeyToPath{{Key: src.ConfigMap.Key, Path: src.ConfigMap.Key}},
		}
	case src.Secret != nil:
		v.Secret = &corev1.SecretVolumeSource{
			SecretName: src.Secret.Name,
			Items:      []corev1.KeyToPath{{Key: src.Secret.Key, Path: src.Secret.Key}},
		}
	case src.PersistentVolumeClaim != nil:
		v.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: src.PersistentVolumeClaim.ClaimName, ReadOnly: true}
	default:
		return v, false
	}
	return v, true
}

// paceArgs turns the pace into the replayer's flags; no pace keeps the capture's own timing.
func paceArgs(p *v1alpha1.ReplayPace) []string {
	switch {
	case p == nil:
		return []string{"--multiplier=1"}
	case p.Multiplier != nil:
		return []string{"--multiplier=" + strconv.FormatFloat(*p.Multiplier, 'g', -1, 64)}
	case p.PacketsPerSecond != nil:
		return []string{"--pps=" + itoa(*p.PacketsPerSecond)}
	case p.Mbps != nil:
		return []string{"--mbps=" + strconv.FormatFloat(*p.Mbps, 'g', -1, 64)}
	default:
		return []string{"--top-speed"}
	}
}

// pinToNode keeps a pod on one node the way the DaemonSet controller does, by the node's name.
func pinToNode(node string) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}},
		},
	}}
}

// nonRootPodSecurity gives mounted Secrets (mode 0400, owned by root) the group of the non-root user, so
// that user can read its credentials; the kubelet then adds group read to the files.
func nonRootPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{FSGroup: ptr(int64(nonRootUID))}
}

// nonRootUID is the user workloads without privileges run as.
const nonRootUID = 65532

// restrictedSecurityContext is the Pod Security "restricted" profile: workloads that need no privilege get none.
func restrictedSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		Privileged:               ptr(false),
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr(int64(nonRootUID)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// workloadResources are the spec's resources or modest defaults (memory in MiB).
func workloadResources(r *corev1.ResourceRequirements, cpu string, memRequestMiB, memLimitMiB int64) corev1.ResourceRequirements {
	if r != nil {
		return *r
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: *resource.NewQuantity(memRequestMiB<<20, resource.BinarySI),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(memLimitMiB<<20, resource.BinarySI)},
	}
}

// templateHash is a short, stable digest of a pod template.
func templateHash(t corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:8]
}
