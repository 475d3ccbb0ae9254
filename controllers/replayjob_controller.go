package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/heartbeat"
)

// ReplayJobReconciler turns a ReplayJob into a Job that replays its capture.
type ReplayJobReconciler struct {
	client.Client
	Recorder record.EventRecorder
	Options  children.Options
	// Figures brings the replayers' heartbeats (progress) into the status; nil follows the Job only.
	Figures *Figures
}

// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=replayjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=replayjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=replayjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete

// Reconcile runs the Job of the ReplayJob's current spec, retires Jobs of earlier specs, and reports progress.
func (r *ReplayJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	// 1. Load the replay.
	rj := &v1alpha1.ReplayJob{}
	if err := r.Get(ctx, req.NamespacedName, rj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := rj.DeepCopy()

	// 2. Report whatever happens, once, at the end.
	var result outcome
	defer func() {
		if err != nil {
			result = outcome{reason: ReasonApplyFailed, message: err.Error()}
		}
		summarize(&rj.Status.CommonStatus, rj.Generation, result)
		if perr := patchStatus(ctx, r.Client, rj, before, before.Status, rj.Status); perr != nil && !apierrors.IsNotFound(perr) {
			err = perr
		}
	}()

	// 3. Build the Job of the current spec; its name changes with what it runs.
	job := children.ReplayJobObject(rj, r.Options)
	if err := r.retireOtherJobs(ctx, rj, job.Name); err != nil {
		return ctrl.Result{}, err
	}

	// 4. A replay that already finished is not run again, even after its Job was cleaned up.
	finished := rj.Status.Job == job.Name && (rj.Status.Phase == v1alpha1.ReplaySucceeded || rj.Status.Phase == v1alpha1.ReplayFailed)
	if finished {
		existing := &batchv1.Job{}
		if gerr := r.Get(ctx, client.ObjectKeyFromObject(job), existing); apierrors.IsNotFound(gerr) {
			result = replayOutcome(rj.Status.Phase, "")
			return ctrl.Result{}, nil
		}
	}
	if rj.Status.Job != job.Name {
		rj.Status = v1alpha1.ReplayJobStatus{CommonStatus: rj.Status.CommonStatus, Job: job.Name, Phase: v1alpha1.ReplayPending, Progress: "0%"}
	}
	if err := applyChild(ctx, r.Client, r.Recorder, rj, job); err != nil {
		return ctrl.Result{}, err
	}

	// 5. Follow the Job.
	phase, msg := jobPhase(job)
	if phase != rj.Status.Phase && (phase == v1alpha1.ReplaySucceeded || phase == v1alpha1.ReplayFailed) {
		r.Recorder.Eventf(rj, eventType(phase), string(phase), "Replay %s: %s", phase, msg)
	}
	rj.Status.Phase = phase
	rj.Status.StartTime = job.Status.StartTime
	rj.Status.CompletionTime = job.Status.CompletionTime
	if r.Figures != nil {
		if s, ok, wait := r.Figures.take(heartbeat.KindReplayJob, rj); ok {
			replayFigures(&rj.Status, s)
		} else if wait > 0 {
			res.RequeueAfter = shortest(res.RequeueAfter, wait)
		}
	}
	if phase == v1alpha1.ReplaySucceeded {
		rj.Status.Progress = "100%"
	}
	result = replayOutcome(phase, msg)
	return res, nil
}

// retireOtherJobs deletes the Jobs of earlier specs, with their pods.
func (r *ReplayJobReconciler) retireOtherJobs(ctx context.Context, rj *v1alpha1.ReplayJob, keep string) error {
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(rj.Namespace), client.MatchingLabels{
		children.LabelInstance: rj.Name, children.LabelComponent: children.ComponentReplay,
	}); err != nil {
		return err
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Name == keep || !ownedBy(j, rj) {
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy("Background")); client.IgnoreNotFound(err) != nil {
			return err
		}
		r.Recorder.Eventf(rj, "Normal", "Replaced", "Deleted Job %s of an earlier spec", j.Name)
	}
	return nil
}

// jobPhase reads a Job's conditions the way the Job controller writes them.
func jobPhase(job *batchv1.Job) (v1alpha1.ReplayPhase, string) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return v1alpha1.ReplaySucceeded, "Job " + job.Name + " completed"
		case batchv1.JobFailed:
			return v1alpha1.ReplayFailed, fmt.Sprintf("Job %s failed: %s: %s", job.Name, c.Reason, c.Message)
		}
	}
	if job.Status.Active > 0 {
		return v1alpha1.ReplayRunning, "Job " + job.Name + " is replaying"
	}
	return v1alpha1.ReplayPending, "Job " + job.Name + " is waiting for its pod"
}

func replayOutcome(p v1alpha1.ReplayPhase, msg string) outcome {
	switch p {
	case v1alpha1.ReplaySucceeded:
		return outcome{ready: true, reason: ReasonSucceeded, message: msg}
	case v1alpha1.ReplayFailed:
		return outcome{stalled: true, reason: ReasonJobFailed, message: msg}
	}
	return progressing(msg)
}

func eventType(p v1alpha1.ReplayPhase) string {
	if p == v1alpha1.ReplayFailed {
		return "Warning"
	}
	return "Normal"
}

// ownedBy is true when owner controls obj.
func ownedBy(obj client.Object, owner client.Object) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == owner.GetUID() && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

// SetupWithManager watches replays and the Jobs they own.
func (r *ReplayJobReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ReplayJob{}).
		Owns(&batchv1.Job{}).
		WatchesRawSource(figureWakeups(r.Figures, heartbeat.KindReplayJob)).
		Named("replayjob").
		Complete(r)
}
