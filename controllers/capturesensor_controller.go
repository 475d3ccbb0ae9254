package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/heartbeat"
)

// CaptureSensorReconciler turns a CaptureSensor into a DaemonSet of sensors.
type CaptureSensorReconciler struct {
	Base
	// ports gives each sensor node ports of its own; nil leaves every sensor on the first pair.
	ports *portBook
}

// Reconcile brings one CaptureSensor's DaemonSet in line with its spec and reports how it runs.
func (r *CaptureSensorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := skeleton[*v1alpha1.CaptureSensor]{Client: r.Client, figures: r.Figures, kind: kindOf[*v1alpha1.CaptureSensor]{
		heartbeat: heartbeat.KindCaptureSensor,
		status: func(cs *v1alpha1.CaptureSensor) (*v1alpha1.CommonStatus, any) {
			return &cs.Status.CommonStatus, cs.Status
		},
		// The garbage collector takes the DaemonSet; only the topics need the operator.
		finalize: func(ctx context.Context, cs *v1alpha1.CaptureSensor) (bool, error) {
			return finalizeTopics(ctx, r.Client, r.Topics, cs, cs.Spec.TopicDeletionPolicy, cs.Status.Topics)
		},
	}}
	return s.reconcile(ctx, req, &v1alpha1.CaptureSensor{}, []step[*v1alpha1.CaptureSensor]{
		r.checkFilter, r.tendTopic, r.rollOut, r.explainPods, r.checkFanout, r.figures,
	})
}

// checkFilter stops everything before any rollout when the kernel would refuse the filter; the running
// sensors stay as they are.
func (r *CaptureSensorReconciler) checkFilter(_ context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	refuseFilter(r.Recorder, cs, p, "spec.filter", cs.Spec.Filter, checkSensorFilter(cs.Spec.Filter, cs.Spec.Interfaces, cs.Spec.SnapLength))
	return nil
}

// tendTopic makes the packets topic exist as declared, when it lives on the operator's Kafka.
func (r *CaptureSensorReconciler) tendTopic(ctx context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	if r.Topics != nil && usesDefaultKafka(cs.Spec.Kafka) {
		tendTopic(ctx, r.Topics, topicWant(children.SensorTopic(cs), cs.Spec.Topic), &cs.Status.Topics, p)
	}
	return nil
}

// rollOut applies the DaemonSet the spec describes, on node ports no other sensor uses, and reports its rollout.
func (r *CaptureSensorReconciler) rollOut(ctx context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	if r.ports != nil {
		if err := r.ports.sensorPorts(ctx, r.Client, cs); err != nil {
			return err
		}
	}
	ds := children.SensorDaemonSet(cs, r.Options)
	if err := applyChild(ctx, r.Client, r.Recorder, cs, ds); err != nil {
		return err
	}
	cs.Status.DaemonSet = ds.Name
	cs.Status.Topic = children.SensorTopic(cs)
	cs.Status.NodesDesired = ds.Status.DesiredNumberScheduled
	cs.Status.NodesReady = ds.Status.NumberReady
	cs.Status.Nodes = fmt.Sprintf("%d/%d", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	p.outcome = daemonSetOutcome(ds)
	return nil
}

// explainPods tells why sensors that should run do not, from their pods.
func (r *CaptureSensorReconciler) explainPods(ctx context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	sel := children.PodSelector(children.ComponentSensor, cs.Name)
	return explainPods(ctx, r.pods, r.Recorder, cs, &cs.Status.CommonStatus, sel, int(cs.Status.NodesDesired), p)
}

// figures brings traffic and losses from the sensors' heartbeats, rewritten at most once per status interval;
// between rewrites a degraded sensor stays degraded rather than flapping to Ready.
func (r *CaptureSensorReconciler) figures(_ context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	if r.Figures == nil {
		return nil
	}
	var degraded string
	if s, fresh, wait := r.Figures.take(heartbeat.KindCaptureSensor, cs); fresh {
		degraded = sensorFigures(&cs.Status, s, cs.Spec.DropThresholdPercent)
	} else {
		p.after(wait)
		degraded = lastDegraded(cs.Status.Conditions)
	}
	if degraded != "" && p.outcome.ready {
		p.outcome = outcome{degraded: true, reason: ReasonDegraded, message: degraded}
	}
	return nil
}

// daemonSetOutcome says whether every selected node runs a ready sensor of the current spec.
func daemonSetOutcome(ds *appsv1.DaemonSet) outcome {
	st := ds.Status
	switch {
	case st.ObservedGeneration < ds.Generation:
		return progressing("DaemonSet " + ds.Name + " has not yet seen the new spec")
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		return progressing(fmt.Sprintf("%d of %d nodes run the current sensor", st.UpdatedNumberScheduled, st.DesiredNumberScheduled))
	case st.NumberReady < st.DesiredNumberScheduled:
		return progressing(fmt.Sprintf("%d of %d sensors ready", st.NumberReady, st.DesiredNumberScheduled))
	}
	return outcome{ready: true, reason: ReasonSucceeded, message: fmt.Sprintf("%d of %d sensors ready", st.NumberReady, st.DesiredNumberScheduled)}
}

// SetupWithManager watches sensors and what they own and run.
func (r *CaptureSensorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.controllerFor(mgr, "capturesensor", &v1alpha1.CaptureSensor{}, &appsv1.DaemonSet{}, children.ComponentSensor, heartbeat.KindCaptureSensor).
		Complete(r)
}
