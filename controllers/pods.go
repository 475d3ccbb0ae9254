package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// A DaemonSet, Deployment or Job only counts pods that are not ready; why they are not (the scheduler's
// refusal, a missing ConfigMap, a crash loop) is written on the pods and in the kubelet's events. The
// doctor reads it there, so a resource's own status tells the cause instead of "0 of 1 ready" forever.

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=list

// podDoctor finds what keeps a workload's pods from running.
type podDoctor struct {
	// pods reads the cache, which holds only the pods capfleet's workloads run (CacheOptions).
	pods client.Reader
	// events reads the API server directly: a cache of every event in the cluster would cost far more than
	// the rare look at the events of one stuck pod.
	events client.Reader
}

// CacheOptions keep the operator's cache of pods to those its workloads run, labelled by their templates.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{children.LabelManagedBy: children.FieldManager})},
	}}
}

// podsOf maps a pod to the resource whose workload runs it, for the controller of that component.
func podsOf(component string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		l := obj.GetLabels()
		if l[children.LabelComponent] != component || l[children.LabelInstance] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: l[children.LabelInstance]}}}
	})
}

// reasonContainerFailed: a pod that never restarts (a replay's) ended in an error.
const reasonContainerFailed = "ContainerFailed"

// podTrouble is one pod's reason for not running.
type podTrouble struct {
	pod, node, reason, message string
}

// Waiting reasons of a container that waiting alone will not cure. ErrImagePull is left out: the first
// failed pull may be a passing network error; the kubelet turns a lasting one into ImagePullBackOff.
var stuckWaiting = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// explain looks at the pods matching sel in ns and, when some cannot run, returns the outcome that says why:
// Stalled, with the pod's own reason and message and the nodes concerned. It returns nil when no pod is
// stuck (still starting, or running). A nil doctor explains nothing.
//
// starting says that some pod, placed on a node, has not started yet and shows no trouble so far: the
// kubelet tells a volume it cannot mount only in events a little later, and events do not wake a reconcile.
func (d *podDoctor) explain(ctx context.Context, ns string, sel map[string]string, want int) (o *outcome, starting bool, err error) {
	if d == nil {
		return nil, false, nil
	}
	var list corev1.PodList
	if err := d.pods.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
		return nil, false, err
	}
	var found []podTrouble
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		t, err := d.diagnose(ctx, pod)
		if err != nil {
			return nil, false, err
		}
		if t != nil {
			found = append(found, *t)
		} else if pod.Status.Phase == corev1.PodPending && pod.Spec.NodeName != "" {
			starting = true
		}
	}
	if len(found) == 0 {
		return nil, starting, nil
	}
	return troubleOutcome(found, want), starting, nil
}

// diagnose says why one pod cannot run, or nil when nothing keeps it from running.
func (d *podDoctor) diagnose(ctx context.Context, pod *corev1.Pod) (*podTrouble, error) {
	t := &podTrouble{pod: pod.Name, node: pod.Spec.NodeName}
	if t.node == "" {
		t.node = pinnedNode(pod)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			t.reason, t.message = c.Reason, c.Message
			return t, nil
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && stuckWaiting[w.Reason] {
			t.reason, t.message = w.Reason, fmt.Sprintf("container %s: %s", cs.Name, w.Message)
			if last := cs.LastTerminationState.Terminated; last != nil {
				// The kubelet's back-off message changes with every restart ("back-off 20s ..."); the
				// container's own end says more and stays the same, so the status and events do not churn.
				t.message = fmt.Sprintf("container %s keeps failing, last %s", cs.Name, terminated(last))
			}
			return t, nil
		}
		// A Job's pod restarts never: its container's end is the replay's.
		if term := cs.State.Terminated; term != nil && term.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			t.reason, t.message = reasonContainerFailed, fmt.Sprintf("container %s %s", cs.Name, terminated(term))
			return t, nil
		}
	}
	if pod.Status.Phase == corev1.PodPending && pod.Spec.NodeName != "" {
		return d.mountTrouble(ctx, pod, t)
	}
	return nil, nil
}

// mountTrouble finds a volume the kubelet cannot mount (a ConfigMap or Secret that does not exist): the pod
// itself only says ContainerCreating, the reason is in the kubelet's events.
func (d *podDoctor) mountTrouble(ctx context.Context, pod *corev1.Pod, t *podTrouble) (*podTrouble, error) {
	var events corev1.EventList
	if err := d.events.List(ctx, &events, client.InNamespace(pod.Namespace), client.MatchingFields{
		"involvedObject.kind": "Pod", "involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID),
	}); err != nil {
		return nil, err
	}
	var last *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if e.Type == corev1.EventTypeWarning && e.Reason == "FailedMount" && (last == nil || eventTime(e).After(eventTime(last))) {
			last = e
		}
	}
	if last == nil {
		return nil, nil
	}
	t.reason, t.message = last.Reason, last.Message
	return t, nil
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// terminated tells how a container ended, with its termination message: the last lines of its log when it
// wrote none (FallbackToLogsOnError), which is where a workload prints why it stopped.
func terminated(s *corev1.ContainerStateTerminated) string {
	msg := fmt.Sprintf("exited %d (%s)", s.ExitCode, s.Reason)
	if m := strings.TrimSpace(s.Message); m != "" {
		msg += ": " + lastLines(m, 3)
	}
	return msg
}

// lastLines keeps the end of a long termination message, where the error is.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// pinnedNode is the node a pod is pinned to by name before it is scheduled, as the DaemonSet controller and
// a ReplayJob onto an interface pin them.
func pinnedNode(pod *corev1.Pod) string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

// troubleOutcome tells the commonest trouble among the pods, naming its nodes; the first pod's message stands
// for the others, which differ only in names.
func troubleOutcome(found []podTrouble, want int) *outcome {
	byReason := map[string][]podTrouble{}
	for _, t := range found {
		byReason[t.reason] = append(byReason[t.reason], t)
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := len(byReason[reasons[i]]), len(byReason[reasons[j]]); a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	top := byReason[reasons[0]]
	sort.Slice(top, func(i, j int) bool { return top[i].pod < top[j].pod })
	var nodes []string
	for _, t := range top {
		if t.node != "" && !slices.Contains(nodes, t.node) {
			nodes = append(nodes, t.node)
		}
	}
	where := ""
	switch {
	case len(nodes) == 1:
		where = " on node " + nodes[0]
	case len(nodes) > 5:
		where = fmt.Sprintf(" on nodes %s and %d more", strings.Join(nodes[:5], ", "), len(nodes)-5)
	case len(nodes) > 1:
		where = " on nodes " + strings.Join(nodes, ", ")
	}
	if want < len(top) {
		want = len(top)
	}
	msg := fmt.Sprintf("%d of %d pods %s%s (pod %s): %s", len(top), want, reasons[0], where, top[0].pod, top[0].message)
	if len(reasons) > 1 {
		msg += fmt.Sprintf("; also %d pods with other troubles (%s)", len(found)-len(top), strings.Join(reasons[1:], ", "))
	}
	// A replay's failed attempt is retried by its Job while the backoff limit allows: only the Job's failure
	// is final (and told by the Job's own outcome, with this message).
	return &outcome{stalled: reasons[0] != reasonContainerFailed, reason: reasons[0], message: msg}
}

// podStartRecheck is how soon a pass looks again at pods placed on a node that have not started: the
// kubelet's reason (a volume it cannot mount) comes in an event a second or so later, and an event does not
// wake a reconcile, while the pod itself may not change again.
const podStartRecheck = 5 * time.Second

// explainPods is the step every kind runs after its rollout: when the workload is not ready, the pods' own
// trouble replaces the rollout's "n of m ready". A new trouble is told in an event as well.
func explainPods(ctx context.Context, d *podDoctor, rec record.EventRecorder, obj client.Object, st *v1alpha1.CommonStatus, sel map[string]string, want int, p *pass) error {
	if p.outcome.ready || p.outcome.stalled {
		return nil
	}
	o, starting, err := d.explain(ctx, obj.GetNamespace(), sel, want)
	if starting {
		p.after(podStartRecheck)
	}
	if err != nil || o == nil {
		return err
	}
	p.outcome = *o
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady); c == nil || c.Message != o.message {
		rec.Eventf(obj, corev1.EventTypeWarning, o.reason, "%s", o.message)
	}
	return nil
}
