package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// envtest runs no kubelet and no scheduler: these tests write, through the API, the status the kubelet and
// the scheduler would give a workload's pod, and check the resource's conditions tell it.

// workloadPod creates a pod as the workload's controller would (the template's labels, pinned to node when
// it is not empty), then gives it st as its status.
func workloadPod(t *testing.T, c client.Client, ns, name string, labels map[string]string, node string, restart corev1.RestartPolicy, st corev1.PodStatus) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	l := map[string]string{"app.kubernetes.io/managed-by": "capfleet-operator", "app.kubernetes.io/name": "capfleet"}
	for k, v := range labels {
		l[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Spec: corev1.PodSpec{
			RestartPolicy: restart,
			Containers:    []corev1.Container{{Name: "main", Image: "capfleet:test"}},
		},
	}
	if node != "" {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}},
		}}
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = st
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// bindPod places a pod on a node, as the scheduler does.
func bindPod(t *testing.T, c client.Client, pod *corev1.Pod, node string) {
	t.Helper()
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
	if err := c.SubResource("binding").Create(context.Background(), pod, b); err != nil {
		t.Fatal(err)
	}
	get(t, c, pod)
}

// setPodStatus replaces a pod's status.
func setPodStatus(t *testing.T, c client.Client, pod *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	get(t, c, pod)
	pod.Status = st
	if err := c.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// kubeletEvent records an event on a pod as the kubelet would.
func kubeletEvent(t *testing.T, c client.Client, pod *corev1.Pod, reason, msg string) {
	t.Helper()
	now := metav1.Now()
	e := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: pod.Namespace, GenerateName: pod.Name + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg,
		Source:         corev1.EventSource{Component: "kubelet", Host: pod.Spec.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if err := c.Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// expectStalled waits until obj is Stalled with reason and a Ready message holding every part, as kstatus
// Failed, and an event on obj says the same.
func expectStalled(t *testing.T, c client.Client, obj client.Object, reason string, parts ...string) {
	t.Helper()
	eventually(t, "Stalled "+reason, func() error {
		get(t, c, obj)
		st, ready := condition(obj, v1alpha1.ConditionStalled), condition(obj, v1alpha1.ConditionReady)
		if st == nil || st.Status != metav1.ConditionTrue || st.Reason != reason {
			return fmt.Errorf("Stalled %+v", st)
		}
		if ready == nil || ready.Status != metav1.ConditionFalse {
			return fmt.Errorf("Ready %+v", ready)
		}
		for _, p := range parts {
			if !strings.Contains(ready.Message, p) {
				return fmt.Errorf("Ready message %q does not say %q", ready.Message, p)
			}
		}
		if s := kstatusOf(t, obj); s != status.FailedStatus {
			return fmt.Errorf("kstatus %s", s)
		}
		return nil
	})
	eventually(t, "Warning event "+reason, func() error {
		var events corev1.EventList
		if err := c.List(context.Background(), &events, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.InvolvedObject.UID == obj.GetUID() && e.Type == corev1.EventTypeWarning && e.Reason == reason && strings.Contains(e.Message, parts[0]) {
				return nil
			}
		}
		return fmt.Errorf("no Warning %s event on %s", reason, obj.GetName())
	})
}

func sensorLabels(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/component": "sensor", "app.kubernetes.io/instance": name}
}

// A second sensor on a node whose ports are taken, then a sensor that crash-loops: each is Stalled with the
// scheduler's or the kubelet's reason and the node, and goes back to reconciling once the pod recovers.
func TestSensorPodTroubleInStatus(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second"}, Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}}}
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	const sched = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
	pod := workloadPod(t, c, ns, "second-sensor-x1", sensorLabels("second"), "node-a", corev1.RestartPolicyAlways, corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: sched, LastTransitionTime: metav1.Now()}},
	})
	expectStalled(t, c, cs, "Unschedulable", sched, "on node node-a", "pod second-sensor-x1")

	t.Run("crash loop with the container's last words", func(t *testing.T) {
		bindPod(t, c, pod, "node-a")
		setPodStatus(t, c, pod, corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "main", Image: "capfleet:test", RestartCount: 4,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
					Message: "back-off 1m20s restarting failed container=main pod=second-sensor-x1"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
					Message: "starting\ncapfleet: sensor: interface eth9 not found on node-a"}},
			}},
		})
		expectStalled(t, c, cs, "CrashLoopBackOff", "interface eth9 not found", "on node node-a", "container main keeps failing, last exited 1 (Error)")
	})

	t.Run("reconciling again once the pod runs", func(t *testing.T) {
		setPodStatus(t, c, pod, corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "capfleet:test", RestartCount: 4,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
		})
		eventually(t, "not stalled", func() error {
			get(t, c, cs)
			if st := condition(cs, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
	})
}

// A processor whose Secret is missing waits in ContainerCreating; the kubelet's FailedMount event is the only
// place that says why. Then an image the node cannot pull.
func TestPipelinePodTroubleInStatus(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	pp := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flows"}, Spec: v1alpha1.PacketPipelineSpec{
		Source: v1alpha1.PipelineSource{Topic: "raw"},
		Sinks: v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Connection: &v1alpha1.CassandraConnection{
			SecretRef: &corev1.LocalObjectReference{Name: "cass-login"}}}},
	}}
	if err := c.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/component": "processor", "app.kubernetes.io/instance": "flows"}
	pod := workloadPod(t, c, ns, "flows-processor-abc-1", labels, "", corev1.RestartPolicyAlways, corev1.PodStatus{})
	bindPod(t, c, pod, "node-b")
	setPodStatus(t, c, pod, corev1.PodStatus{
		Phase: corev1.PodPending,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "capfleet:test",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}},
	})
	const mount = `MountVolume.SetUp failed for volume "cassandra" : secret "cass-login" not found`
	kubeletEvent(t, c, pod, "FailedMount", mount)
	expectStalled(t, c, pp, "FailedMount", mount, "on node node-b")

	t.Run("image pull back-off", func(t *testing.T) {
		setPodStatus(t, c, pod, corev1.PodStatus{
			Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "capfleet:test",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
					Message: `Back-off pulling image "capfleet:test"`}}}},
		})
		expectStalled(t, c, pp, "ImagePullBackOff", `Back-off pulling image "capfleet:test"`, "on node node-b")
	})
}

// replayWithTopic is a ReplayJob of a ConfigMap's capture into a topic.
func replayWithTopic(ns, name, topic string, partitions int32) *v1alpha1.ReplayJob {
	return &v1alpha1.ReplayJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ReplayJobSpec{
			Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "captures", Key: "http.pcap"}},
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 1}},
		},
	}
}

// replayPod creates the pod of the ReplayJob's current Job, labelled as the Job controller labels it.
func replayPod(t *testing.T, c client.Client, rj *v1alpha1.ReplayJob, job *batchv1.Job, node string, st corev1.PodStatus) *corev1.Pod {
	t.Helper()
	labels := map[string]string{"app.kubernetes.io/component": "replay", "app.kubernetes.io/instance": rj.Name, batchv1.JobNameLabel: job.Name}
	return workloadPod(t, c, rj.Namespace, job.Name+"-p1", labels, node, corev1.RestartPolicyNever, st)
}

// A replay whose ConfigMap is missing is not "Running": the Job counts its pod as active, but the pod waits
// for a volume that will not come. A replay pinned to a node that does not exist cannot be scheduled.
func TestReplayPodTroubleInStatus(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	rj := replayWithTopic(ns, "no-capture", "", 3)
	rj.Spec.Kafka = &v1alpha1.KafkaConnection{BootstrapServers: []string{"elsewhere:9092"}} // no topic is created for it
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
	now := metav1.Now()
	job.Status = batchv1.JobStatus{StartTime: &now, Active: 1, Ready: ptrTo(int32(0))}
	if err := c.Status().Update(ctx, job); err != nil {
		t.Fatal(err)
	}
	pod := replayPod(t, c, rj, job, "", corev1.PodStatus{})
	bindPod(t, c, pod, "node-c")
	setPodStatus(t, c, pod, corev1.PodStatus{Phase: corev1.PodPending})
	const mount = `MountVolume.SetUp failed for volume "capture" : configmap "captures" not found`
	kubeletEvent(t, c, pod, "FailedMount", mount)
	expectStalled(t, c, rj, "FailedMount", mount, "on node node-c")
	if rj.Status.Phase != v1alpha1.ReplayPending {
		t.Errorf("phase %s while the pod cannot start, want Pending", rj.Status.Phase)
	}

	t.Run("pinned to a node that does not exist", func(t *testing.T) {
		rj := &v1alpha1.ReplayJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
			Spec: v1alpha1.ReplayJobSpec{
				Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "captures", Key: "http.pcap"}},
				Target: v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: "veth0", NodeName: "no-such-node"}},
			},
		}
		if err := c.Create(ctx, rj); err != nil {
			t.Fatal(err)
		}
		var job *batchv1.Job
		eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
		const sched = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
		replayPod(t, c, rj, job, "no-such-node", corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
				Message: sched, LastTransitionTime: metav1.Now()}},
		})
		expectStalled(t, c, rj, "Unschedulable", sched, "on node no-such-node")
	})
}

// A failed replay tells the replayer's last words, kept by the kubelet as the termination message, not only
// the Job's BackoffLimitExceeded.
func TestReplayFailureTellsTheContainersEnd(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	rj := replayWithTopic(ns, "missing-topic", "nowhere", 3)
	rj.Spec.Kafka = &v1alpha1.KafkaConnection{BootstrapServers: []string{"elsewhere:9092"}}
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
	if p := job.Spec.Template.Spec.Containers[0].TerminationMessagePolicy; p != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %q", p)
	}
	const last = `capfleet: kafka elsewhere:9092: topic "nowhere" does not exist`
	pod := replayPod(t, c, rj, job, "", corev1.PodStatus{})
	bindPod(t, c, pod, "node-d")
	setPodStatus(t, c, pod, corev1.PodStatus{
		Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "capfleet:test",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "replaying http.pcap\n" + last}}}},
	})
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	job.Status = batchv1.JobStatus{StartTime: &now, Failed: 1, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
	}}
	if err := c.Status().Update(ctx, job); err != nil {
		t.Fatal(err)
	}
	expectStalled(t, c, rj, "JobFailed", "BackoffLimitExceeded", last, "on node node-d")
	if rj.Status.Phase != v1alpha1.ReplayFailed {
		t.Errorf("phase %s", rj.Status.Phase)
	}
}

// A replay into a topic that does not exist on the operator's Kafka gets it, with the spec's partitions,
// before its Job runs; an existing topic is left as it is.
func TestReplayCreatesItsMissingTopic(t *testing.T) {
	c := cluster(t)
	broker := operatorBroker(t)
	ctx := context.Background()
	ns := namespace(t, c)
	topic := ns + ".replayed"
	t.Cleanup(func() { _, _ = broker.adm.DeleteTopic(context.Background(), topic) })

	rj := replayWithTopic(ns, "fresh", topic, 4)
	rj.Spec.Target.Topic.Retention = &metav1.Duration{Duration: time.Hour}
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	broker.expect(t, topic, 4, 3600000)
	eventually(t, "Job created after the topic", func() error { _, err := replayJobOf(ctx, c, rj); return err })

	t.Run("an existing topic is not altered", func(t *testing.T) {
		other := replayWithTopic(ns, "second", topic, 8)
		if err := c.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		eventually(t, "second Job created", func() error { _, err := replayJobOf(ctx, c, other); return err })
		broker.expect(t, topic, 4, 3600000)
	})
}

// Two sensors whose fanout group ids overlap, placed on one node, would each get a part of the packets: the
// younger is Stalled naming the older and the node, and runs again once given a group of its own.
func TestSensorsSharingAFanoutGroupStall(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	mk := func(name string, group int32, ifaces ...string) *v1alpha1.CaptureSensor {
		cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.CaptureSensorSpec{
			Interfaces: ifaces, Ring: v1alpha1.RingSpec{BlockSizeKiB: 1024, Blocks: 8, FanoutGroup: group}}}
		if err := c.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		pod := workloadPod(t, c, ns, name+"-sensor-p1", sensorLabels(name), "node-f", corev1.RestartPolicyAlways, corev1.PodStatus{})
		bindPod(t, c, pod, "node-f")
		return cs
	}
	older := mk("older", 40, "eth0", "eth1") // ids 40-41
	time.Sleep(1100 * time.Millisecond)      // creation times are in seconds
	younger := mk("younger", 41, "eth1")     // id 41
	expectStalled(t, c, younger, "FanoutGroupShared", "overlaps CaptureSensor "+ns+"/older's (ids 40-41) on node(s) node-f")
	// Only the timing of its own first passes would otherwise decide whether the older sensor is reconciled
	// after the younger appeared.
	reconciles.After(t, "capturesensor", older, func() {
		change(t, c, older, func() { older.Annotations = map[string]string{"nudge": "1"} })
	})
	consistently(t, time.Second, "the older sensor keeps running", func() error {
		get(t, c, older)
		if st := condition(older, v1alpha1.ConditionStalled); st != nil && st.Status == metav1.ConditionTrue {
			return fmt.Errorf("stalled too: %+v", st)
		}
		return nil
	})

	change(t, c, younger, func() { younger.Spec.Ring.FanoutGroup = 42 })
	eventually(t, "no longer stalled with a group of its own", func() error {
		get(t, c, younger)
		if st := condition(younger, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse || st.ObservedGeneration != younger.Generation {
			return fmt.Errorf("Stalled %+v", st)
		}
		return nil
	})
}

// A replay allowed retries whose first attempt failed is still reconciling, and says why the attempt failed;
// only the Job's failure stalls it.
func TestReplayFailedAttemptIsNotFinal(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	rj := replayWithTopic(ns, "retried", "nowhere", 3)
	rj.Spec.Kafka = &v1alpha1.KafkaConnection{BootstrapServers: []string{"elsewhere:9092"}}
	rj.Spec.BackoffLimit = ptrTo(int32(2))
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
	const last = `capfleet: kafka elsewhere:9092: connection refused`
	pod := replayPod(t, c, rj, job, "", corev1.PodStatus{})
	bindPod(t, c, pod, "node-e")
	setPodStatus(t, c, pod, corev1.PodStatus{
		Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "capfleet:test",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: last}}}},
	})
	eventually(t, "Reconciling with the attempt's end", func() error {
		get(t, c, rj)
		r, st := condition(rj, v1alpha1.ConditionReconciling), condition(rj, v1alpha1.ConditionStalled)
		if r == nil || r.Status != metav1.ConditionTrue || r.Reason != "ContainerFailed" || !strings.Contains(r.Message, last) {
			return fmt.Errorf("Reconciling %+v", r)
		}
		if st == nil || st.Status != metav1.ConditionFalse {
			return fmt.Errorf("Stalled %+v", st)
		}
		return nil
	})
}
