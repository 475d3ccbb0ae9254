// Package controllers holds one reconciler per capfleet kind and the pieces they share.
package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
)

// kafkaRetry is how soon a reconcile that could not reach Kafka tries again.
const kafkaRetry = 30 * time.Second

// Base is what every kind's reconciler works with.
type Base struct {
	client.Client
	Recorder record.EventRecorder
	Options  children.Options
	// Topics tends the Kafka topics resources declare or write to, on the operator's Kafka; nil leaves topics
	// to someone else.
	Topics *topics.Manager
	// Figures brings the workloads' heartbeats into the status; nil reports from the children only.
	Figures *Figures
	// pods tells why a workload's pods do not run; nil leaves the rollout's count alone.
	pods *podDoctor
}

// The reconcilers tell what they do in events.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Setup registers every capfleet reconciler with the manager. t tends Kafka topics and f brings heartbeats
// into status; either may be nil, leaving that part out.
func Setup(mgr ctrl.Manager, o children.Options, t *topics.Manager, f *Figures) error {
	d := &podDoctor{pods: mgr.GetClient(), events: mgr.GetAPIReader()}
	base := func(name string) Base {
		return Base{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor(name + "-controller"), Options: o, Topics: t, Figures: f, pods: d}
	}
	ports := &portBook{}
	if err := (&CaptureSensorReconciler{Base: base("capturesensor"), ports: ports}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ReplayJobReconciler{Base: base("replayjob")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&FlowCollectorReconciler{Base: base("flowcollector"), ports: ports}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&PacketPipelineReconciler{Base: base("packetpipeline"), ports: ports}).SetupWithManager(mgr)
}

// controllerFor builds the controller named name of one kind, which reconciles a resource when it changes,
// when the child it owns changes (so the child is put back as built), when one of its workloads' pods
// changes (so the status tells why they do not run), and when its heartbeats bring new figures.
func (b *Base) controllerFor(mgr ctrl.Manager, name string, kind, child client.Object, component, beats string) *builder.Builder {
	return ctrl.NewControllerManagedBy(mgr).
		For(kind).
		Owns(child).
		Watches(&corev1.Pod{}, podsOf(component)).
		WatchesRawSource(figureWakeups(b.Figures, beats)).
		Named(name)
}

// figureWakeups is the source that reconciles a resource when its heartbeats bring new figures; without
// figures it never fires.
func figureWakeups(f *Figures, kind string) source.Source {
	ch := make(<-chan event.GenericEvent)
	if f != nil {
		ch = f.wakeups(kind)
	}
	return source.Channel(ch, &handler.EnqueueRequestForObject{})
}

// shortest is the sooner of two requeue delays, where zero means none.
func shortest(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
