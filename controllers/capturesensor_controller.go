package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
	"capfleet.dev/capfleet/heartbeat"
)

// CaptureSensorReconciler turns a CaptureSensor into a DaemonSet of sensors.
type CaptureSensorReconciler struct {
	client.Client
	Recorder record.EventRecorder
	Options  children.Options
	// Topics tends the sensors' Kafka topics; nil leaves topics to someone else.
	Topics *topics.Manager
	// Figures brings the sensors' heartbeats into the status; nil reports rollout only.
	Figures *Figures
}

// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one CaptureSensor's DaemonSet in line with its spec and reports how it runs.
func (r *CaptureSensorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	// 1. Load the sensor; a deleted one has nothing left to do (the garbage collector takes the DaemonSet).
	cs := &v1alpha1.CaptureSensor{}
	if err := r.Get(ctx, req.NamespacedName, cs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cs.DeletionTimestamp != nil && r.Figures != nil {
		r.Figures.forget(heartbeat.KindCaptureSensor, cs)
	}
	if deleting, err := finalizeTopics(ctx, r.Client, r.Topics, cs, cs.Spec.TopicDeletionPolicy, cs.Status.Topics); deleting || err != nil {
		return ctrl.Result{}, err
	}
	before := cs.DeepCopy()

	// 2. Whatever happens below, tell it in the status, once, at the end.
	var result outcome
	defer func() {
		if err != nil && !result.stalled {
			result = outcome{reason: ReasonApplyFailed, message: err.Error()}
		}
		summarize(&cs.Status.CommonStatus, cs.Generation, result)
		if perr := patchStatus(ctx, r.Client, cs, before, before.Status, cs.Status); perr != nil && !apierrors.IsNotFound(perr) {
			err = perr
		}
	}()

	// 3. A filter the kernel would refuse stops everything before any rollout; the running sensors stay as they are.
	if ferr := checkSensorFilter(cs.Spec.Filter, cs.Spec.Interfaces, cs.Spec.SnapLength); ferr != nil {
		result = outcome{stalled: true, reason: ReasonInvalidFilter, message: fmt.Sprintf("spec.filter %q: %v", cs.Spec.Filter, ferr)}
		r.Recorder.Eventf(cs, "Warning", ReasonInvalidFilter, "%s", result.message)
		return ctrl.Result{}, nil
	}

	// 4. Make the packets topic exist as declared; trouble there is reported, but does not hold back the sensors.
	var topicTrouble *outcome
	if r.Topics != nil && usesDefaultKafka(cs.Spec.Kafka) {
		want := topicWant(children.SensorTopic(cs), cs.Spec.Topic)
		sts, trouble, terr := tendTopics(ctx, r.Topics, []topics.Want{want}, cs.Status.Topics)
		if terr != nil {
			trouble, res.RequeueAfter = &outcome{reason: ReasonKafkaUnavailable, message: terr.Error()}, kafkaRetry
		}
		cs.Status.Topics, topicTrouble = sts, trouble
	}

	// 5. Apply the DaemonSet the spec describes.
	ds := children.SensorDaemonSet(cs, r.Options)
	if err := applyChild(ctx, r.Client, r.Recorder, cs, ds); err != nil {
		return ctrl.Result{}, err
	}

	// 6. Report the rollout.
	cs.Status.DaemonSet = ds.Name
	cs.Status.Topic = children.SensorTopic(cs)
	cs.Status.NodesDesired = ds.Status.DesiredNumberScheduled
	cs.Status.NodesReady = ds.Status.NumberReady
	cs.Status.Nodes = fmt.Sprintf("%d/%d", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	result = daemonSetOutcome(ds)

	// 7. Traffic and losses, from the sensors' heartbeats, rewritten at most once per status interval;
	// between rewrites a degraded sensor stays degraded rather than flapping to Ready.
	if r.Figures != nil {
		var degraded string
		if s, fresh, wait := r.Figures.take(heartbeat.KindCaptureSensor, cs); fresh {
			degraded = sensorFigures(&cs.Status, s, cs.Spec.DropThresholdPercent)
		} else {
			res.RequeueAfter = shortest(res.RequeueAfter, wait)
			if c := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == ReasonDegraded {
				degraded = c.Message
			}
		}
		if degraded != "" && result.ready {
			result = outcome{degraded: true, reason: ReasonDegraded, message: degraded}
		}
	}
	if topicTrouble != nil {
		result = *topicTrouble
	}
	return res, nil
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

// SetupWithManager watches sensors and the DaemonSets they own, so a change to either brings a reconcile.
func (r *CaptureSensorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.CaptureSensor{}).
		Owns(&appsv1.DaemonSet{}).
		WatchesRawSource(figureWakeups(r.Figures, heartbeat.KindCaptureSensor)).
		Named("capturesensor").
		Complete(r)
}
