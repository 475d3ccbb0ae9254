package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/heartbeat"
)

// ReplayJobReconciler turns a ReplayJob into a Job that replays its capture. Without Topics, a missing
// target topic is left to the replayer, which then fails saying it does not exist.
type ReplayJobReconciler struct{ Base }

// Reconcile runs the Job of the ReplayJob's current spec, retires Jobs of earlier specs, and reports progress.
func (r *ReplayJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := skeleton[*v1alpha1.ReplayJob]{Client: r.Client, figures: r.Figures, kind: kindOf[*v1alpha1.ReplayJob]{
		heartbeat: heartbeat.KindReplayJob,
		status:    func(rj *v1alpha1.ReplayJob) (*v1alpha1.CommonStatus, any) { return &rj.Status.CommonStatus, rj.Status },
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

// retire builds the Job of the current spec, whose name changes with what it runs, and deletes the others. A
// replay that finished under the current spec keeps its Job even when the operator now builds it otherwise
// (a newer operator's template): it is not run again.
func (rp *replayPass) retire(ctx context.Context, rj *v1alpha1.ReplayJob, _ *pass) error {
	rp.job = children.ReplayJobObject(rj, rp.Options)
	keep := rp.job.Name
	if rp.finishedAsSpecified(rj) {
		keep = rj.Status.Job
	}
	return rp.retireOtherJobs(ctx, rj, keep)
}

// finishedAsSpecified is true when the replay ended under the spec as it stands.
func (rp *replayPass) finishedAsSpecified(rj *v1alpha1.ReplayJob) bool {
	finished := rj.Status.Phase == v1alpha1.ReplaySucceeded || rj.Status.Phase == v1alpha1.ReplayFailed
	return finished && rj.Status.Job != "" && (rj.Status.Job == rp.job.Name || rj.Status.ObservedGeneration == rj.Generation)
}

// run applies the Job, unless the replay already finished: it is not run again, even after its Job was
// cleaned up or when a newer operator would build it otherwise.
func (rp *replayPass) run(ctx context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	if rp.finishedAsSpecified(rj) {
		existing := &batchv1.Job{}
		err := rp.Get(ctx, client.ObjectKey{Namespace: rj.Namespace, Name: rj.Status.Job}, existing)
		if apierrors.IsNotFound(err) || rj.Status.Job != rp.job.Name {
			msg := ""
			if c := meta.FindStatusCondition(rj.Status.Conditions, v1alpha1.ConditionReady); c != nil {
				msg = c.Message
			}
			p.stop(replayOutcome(rj.Status.Phase, msg))
			return nil
		}
	}
	if rj.Status.Job != rp.job.Name {
		rj.Status = v1alpha1.ReplayJobStatus{CommonStatus: rj.Status.CommonStatus, Job: rp.job.Name, Phase: v1alpha1.ReplayPending, Progress: "0%"}
	}
	if !rp.finishedAsSpecified(rj) {
		if err := rp.createTopic(ctx, rj, p); err != nil || p.done {
			return err
		}
	}
	return applyChild(ctx, rp.Client, rp.Recorder, rj, rp.job)
}

// createTopic makes a missing target topic on the operator's Kafka, with the spec's partitions (12 unless
// given), so the replay does not fail for want of it. A topic that exists is left as it is: a sensor or
// another replay may own it.
func (rp *replayPass) createTopic(ctx context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	t := rj.Spec.Target.Topic
	if t == nil || rp.Topics == nil || !usesDefaultKafka(rj.Spec.Kafka) {
		return nil
	}
	name := children.ReplayTopic(rj)
	created, err := rp.Topics.CreateIfMissing(ctx, topicWant(name, *t))
	if err != nil {
		p.stop(outcome{reason: ReasonKafkaUnavailable, message: err.Error()})
		p.after(kafkaRetry)
		return nil
	}
	if created {
		rp.Recorder.Eventf(rj, corev1.EventTypeNormal, "TopicCreated", "Created topic %s with %d partitions", name, t.Partitions)
	}
	return nil
}

// follow reports the Job's phase, telling its end in an event. A failed Job is told with its pod's own end
// (the replayer's last words), and a pod that cannot start with the reason it cannot.
func (rp *replayPass) follow(ctx context.Context, rj *v1alpha1.ReplayJob, p *pass) error {
	phase, msg := jobPhase(rp.job)
	sel := children.PodSelector(children.ComponentReplay, rj.Name)
	sel[batchv1.JobNameLabel] = rp.job.Name
	if phase == v1alpha1.ReplayFailed {
		o, _, err := rp.pods.explain(ctx, rj.Namespace, sel, 1)
		if err != nil {
			return err
		}
		if o != nil {
			msg += "; " + o.message
		}
	}
	p.outcome = replayOutcome(phase, msg)
	if phase != rj.Status.Phase && (phase == v1alpha1.ReplaySucceeded || phase == v1alpha1.ReplayFailed) {
		rp.Recorder.Eventf(rj, eventType(phase), p.outcome.reason, "Replay %s: %s", phase, msg)
	}
	rj.Status.Phase = phase
	rj.Status.StartTime = rp.job.Status.StartTime
	rj.Status.CompletionTime = rp.job.Status.CompletionTime
	return explainPods(ctx, rp.pods, rp.Recorder, rj, &rj.Status.CommonStatus, sel, 1, p)
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
	// A Job counts a pod that cannot start as active; only a ready one replays.
	if job.Status.Active > 0 && job.Status.Ready != nil && *job.Status.Ready > 0 {
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

// SetupWithManager watches replays and what they own and run.
func (r *ReplayJobReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.controllerFor(mgr, "replayjob", &v1alpha1.ReplayJob{}, &batchv1.Job{}, children.ComponentReplay, heartbeat.KindReplayJob).
		Complete(r)
}
