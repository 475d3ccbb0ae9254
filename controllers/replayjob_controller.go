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
func (r *ReplayJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := skeleton[*v1alpha1.ReplayJob]{Client: r.Client, figures: r.Figures, kind: kindOf[*v1alpha1.ReplayJob]{
		heartbeat: heartbeat.KindReplayJob,
		status: func(rj *v1alpha1.ReplayJob) (*v1alpha1.CommonStatus, any) {
			return &rj.Status.CommonStatus, rj.Status
		},
	}}
	rp := &replayPass{ReplayJobReconciler: r}
	return s.reconcile(ctx, req, &v1alpha1.ReplayJob{}, []step[*v1alpha1.ReplayJob]{
		rp.retire, rp.run, rp.follow, rp.figures,
	})
}

// replayPass is one reconcile of a ReplayJob: its steps share the Job of the current spec.
type replayPass struct {
	*ReplayJobReconciler
	job *batchv1.Job
}

// retire builds the Job of the current spec, whose name changes with what it runs, and deletes the others.
func (rp *replayPass) retire(ctx context.Context, rj *v1alpha1.ReplayJob, _ *pass) error {
	rp.job = children.ReplayJobObject(rj, rp.Options)
	return rp.retireOtherJobs(ctx, rj, rp.job.Name)
}

// run applies the Job, unless the replay already finished: it is not run again, even after its Job was
// cleaned up.
func (rp *replayPass) run(ctx context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	finished := rj.Status.Job == rp.job.Name && (rj.Status.Phase == v1alpha1.ReplaySucceeded || rj.Status.Phase == v1alpha1.ReplayFailed)
	if finished {
		existing := &batchv1.Job{}
		if err := rp.Get(ctx, client.ObjectKeyFromObject(rp.job), existing); apierrors.IsNotFound(err) {
			p.stop(replayOutcome(rj.Status.Phase, ""))
			return nil
		}
	}
	if rj.Status.Job != rp.job.Name {
		rj.Status = v1alpha1.ReplayJobStatus{CommonStatus: rj.Status.CommonStatus, Job: rp.job.Name, Phase: v1alpha1.ReplayPending, Progress: "0%"}
	}
	return applyChild(ctx, rp.Client, rp.Recorder, rj, rp.job)
}

// follow reports the Job's phase, telling its end in an event.
func (rp *replayPass) follow(_ context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	phase, msg := jobPhase(rp.job)
	if phase != rj.Status.Phase && (phase == v1alpha1.ReplaySucceeded || phase == v1alpha1.ReplayFailed) {
		rp.Recorder.Eventf(rj, eventType(phase), string(phase), "Replay %s: %s", phase, msg)
	}
	rj.Status.Phase = phase
	rj.Status.StartTime = rp.job.Status.StartTime
	rj.Status.CompletionTime = rp.job.Status.CompletionTime
	p.outcome = replayOutcome(phase, msg)
	return nil
}

// figures brings progress from the replayers' heartbeats. A succeeded replay sent everything, whatever its
// last beat said.
func (rp *replayPass) figures(_ context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	if rp.Figures != nil {
		if s, ok, wait := rp.Figures.take(heartbeat.KindReplayJob, rj); ok {
			replayFigures(&rj.Status, s)
		} else {
			p.after(wait)
		}
	}
	if rj.Status.Phase == v1alpha1.ReplaySucceeded {
		rj.Status.Progress = "100%"
	}
	return nil
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
