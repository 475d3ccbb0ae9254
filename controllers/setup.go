// Package controllers holds one reconciler per capfleet kind and the pieces they share.
package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
)

// kafkaRetry is how soon a reconcile that could not reach Kafka tries again.
const kafkaRetry = 30 * time.Second

// Setup registers every capfleet reconciler with the manager. t tends Kafka topics and f brings heartbeats
// into status; either may be nil, leaving that part out.
func Setup(mgr ctrl.Manager, o children.Options, t *topics.Manager, f *Figures) error {
	c := mgr.GetClient()
	d := &podDoctor{pods: c, events: mgr.GetAPIReader()}
	ports := &portBook{}
	if err := (&CaptureSensorReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("capturesensor-controller"), Options: o, Topics: t, Figures: f, pods: d, ports: ports}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ReplayJobReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("replayjob-controller"), Options: o, Topics: t, Figures: f, pods: d}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&PacketPipelineReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("packetpipeline-controller"), Options: o, Topics: t, Figures: f, pods: d, ports: ports}).SetupWithManager(mgr)
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
