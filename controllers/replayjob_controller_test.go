package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// replayJobOf finds the one Job a ReplayJob runs now.
func replayJobOf(ctx context.Context, c client.Client, rj *v1alpha1.ReplayJob) (*batchv1.Job, error) {
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(rj.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": rj.Name}); err != nil {
		return nil, err
	}
	var live []batchv1.Job
	for _, j := range jobs.Items {
		if j.DeletionTimestamp == nil {
			live = append(live, j)
		}
	}
	if len(live) != 1 {
		return nil, fmt.Errorf("%d Jobs for %s, want 1", len(live), rj.Name)
	}
	return &live[0], nil
}

func TestReplayJobLifecycle(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	rj := &v1alpha1.ReplayJob{}
	sample(t, "capture_v1alpha1_replayjob.yaml", ns, rj)
	if err := c.Create(ctx, rj); err != nil {
		t.Fatalf("sample rejected: %v", err)
	}
	var job *batchv1.Job
	eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
	controlledBy(t, job, rj, "ReplayJob")

	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 || job.Spec.TTLSecondsAfterFinished == nil || *job.Spec.TTLSecondsAfterFinished != 3600 {
		t.Errorf("backoffLimit %v ttl %v, want the spec's defaults 0 and 3600", job.Spec.BackoffLimit, job.Spec.TTLSecondsAfterFinished)
	}
	pod := job.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || pod.HostNetwork {
		t.Errorf("restartPolicy %s hostNetwork %v", pod.RestartPolicy, pod.HostNetwork)
	}
	if err := hasArgs(pod.Containers[0], "replay", "--file=/capture/http.pcap", "--pps=2000", "--loop=2",
		"--topic=default.edge.packets", "--kafka-brokers=kafka.test:9092"); err != nil {
		t.Error(err)
	}
	var mounted bool
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "sample-captures" && len(v.ConfigMap.Items) == 1 && v.ConfigMap.Items[0].Key == "http.pcap" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("ConfigMap source not mounted: %+v", pod.Volumes)
	}

	eventually(t, "Pending, 0%, in progress", func() error {
		get(t, c, rj)
		if rj.Status.Phase != v1alpha1.ReplayPending || rj.Status.Progress != "0%" || rj.Status.Job != job.Name {
			return fmt.Errorf("status %+v", rj.Status)
		}
		if s := kstatusOf(t, rj); s != status.InProgressStatus {
			return fmt.Errorf("kstatus %s", s)
		}
		return nil
	})

	t.Run("a Job edited by hand is restored", func(t *testing.T) {
		change(t, c, job, func() {
			job.Spec.TTLSecondsAfterFinished = ptrTo(int32(5))
			job.Labels["app.kubernetes.io/managed-by"] = "someone-else"
		}, client.FieldOwner("kubectl-edit"))
		eventually(t, "edit undone", func() error {
			get(t, c, job)
			if *job.Spec.TTLSecondsAfterFinished != 3600 || job.Labels["app.kubernetes.io/managed-by"] != "capfleet-operator" {
				return fmt.Errorf("ttl %d labels %v", *job.Spec.TTLSecondsAfterFinished, job.Labels)
			}
			return nil
		})
	})

	t.Run("a spec change replaces the Job", func(t *testing.T) {
		change(t, c, rj, func() {
			rj.Spec.Pace = &v1alpha1.ReplayPace{Multiplier: ptrTo(2.5)}
		})
		old := job.Name
		eventually(t, "new Job, old one gone", func() (err error) {
			if job, err = replayJobOf(ctx, c, rj); err != nil {
				return err
			}
			if job.Name == old {
				return errors.New("still the old Job")
			}
			return hasArgs(job.Spec.Template.Spec.Containers[0], "--multiplier=2.5")
		})
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: old}, &batchv1.Job{}); !apierrors.IsNotFound(err) {
			// deleted with background propagation: it may linger only while terminating
			t.Logf("old Job lookup: %v", err)
		}
	})

	t.Run("Current once the Job completes", func(t *testing.T) {
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		job.Status = batchv1.JobStatus{
			StartTime: &now, CompletionTime: &now, Succeeded: 1,
			Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			},
		}
		if err := c.Status().Update(ctx, job); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Succeeded, 100%, Current", func() error {
			get(t, c, rj)
			if rj.Status.Phase != v1alpha1.ReplaySucceeded || rj.Status.Progress != "100%" || rj.Status.CompletionTime == nil {
				return fmt.Errorf("status %+v", rj.Status)
			}
			if s := kstatusOf(t, rj); s != status.CurrentStatus {
				return fmt.Errorf("kstatus %s", s)
			}
			return nil
		})
	})

	t.Run("a finished replay is not run again when its Job is cleaned up", func(t *testing.T) {
		reconciles.After(t, "replayjob", rj, func() {
			if err := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
				t.Fatal(err)
			}
		})
		consistently(t, 2*time.Second, "no Job again after the replay had succeeded", func() error {
			if j, err := replayJobOf(ctx, c, rj); err == nil {
				return fmt.Errorf("Job %s created", j.Name)
			}
			get(t, c, rj)
			if rj.Status.Phase != v1alpha1.ReplaySucceeded {
				return fmt.Errorf("phase %s after cleanup", rj.Status.Phase)
			}
			return nil
		})
	})
}

// A spec whose Job the API server refuses (a node selector that is no label) cannot be mended by retrying: the
// ReplayJob is Stalled, which kstatus reads as Failed, until the spec is fixed.
func TestReplayJobImpossibleSpecStalls(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	rj := &v1alpha1.ReplayJob{}
	sample(t, "capture_v1alpha1_replayjob.yaml", ns, rj)
	rj.Spec.NodeSelector = map[string]string{"not a label!": "x"}
	if err := c.Create(ctx, rj); err != nil {
		t.Fatalf("admission refused what only the Job's validation catches: %v", err)
	}
	eventually(t, "Stalled with the API server's message", func() error {
		get(t, c, rj)
		st := condition(rj, v1alpha1.ConditionStalled)
		if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "ApplyFailed" || !strings.Contains(st.Message, "nodeSelector") {
			return fmt.Errorf("Stalled %+v", st)
		}
		if r := condition(rj, v1alpha1.ConditionReconciling); r == nil || r.Status != metav1.ConditionFalse {
			return fmt.Errorf("Reconciling %+v", r)
		}
		if st.ObservedGeneration != rj.Generation || rj.Status.ObservedGeneration != rj.Generation {
			return fmt.Errorf("observed generation %d, condition's %d, want %d", rj.Status.ObservedGeneration, st.ObservedGeneration, rj.Generation)
		}
		if s := kstatusOf(t, rj); s != status.FailedStatus {
			return fmt.Errorf("kstatus %s", s)
		}
		return nil
	})

	change(t, c, rj, func() { rj.Spec.NodeSelector = nil })
	eventually(t, "no longer stalled once the spec is fixed, and the Job runs", func() error {
		get(t, c, rj)
		if st := condition(rj, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
			return fmt.Errorf("Stalled %+v", st)
		}
		_, err := replayJobOf(ctx, c, rj)
		return err
	})
}

func ptrTo[T any](v T) *T { return &v }

// A replay that finished is not run again when a newer operator builds its Job otherwise (and so names it
// otherwise) while the spec stayed the same: only a spec change runs it again.
func TestFinishedReplayNotRerunByANewerOperator(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	rj := &v1alpha1.ReplayJob{}
	sample(t, "capture_v1alpha1_replayjob.yaml", ns, rj)
	if err := c.Create(ctx, rj); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	eventually(t, "Job created", func() (err error) { job, err = replayJobOf(ctx, c, rj); return err })
	eventually(t, "status names the Job", func() error {
		get(t, c, rj)
		if rj.Status.Job != job.Name || rj.Status.ObservedGeneration != rj.Generation {
			return fmt.Errorf("status %+v", rj.Status)
		}
		return nil
	})
	// What an older operator left: a Job of another name, finished and cleaned up.
	if err := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Job gone or recreated", func() error {
		j, err := replayJobOf(ctx, c, rj)
		if err == nil && j.UID == job.UID {
			return errors.New("old Job still there")
		}
		return nil
	})
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		get(t, c, rj)
		rj.Status.Job = "edge-replay-0123abcd"
		rj.Status.Phase = v1alpha1.ReplaySucceeded
		rj.Status.Progress = "100%"
		return c.Status().Update(ctx, rj)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A Job the operator may have recreated meanwhile is the one under test: remove it too.
	if j, err := replayJobOf(ctx, c, rj); err == nil {
		_ = c.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground))
	}
	// A merge patch of the annotations alone: a typed update would write the spec back reformatted ("24h" as
	// "24h0m0s"), which is a new generation.
	gen := rj.Generation
	reconciles.After(t, "replayjob", rj, func() {
		if err := c.Patch(ctx, rj, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"yes"}}}`))); err != nil {
			t.Fatal(err)
		}
	})
	if rj.Generation != gen {
		t.Fatalf("touching the annotations made generation %d of %d", rj.Generation, gen)
	}
	consistently(t, 2*time.Second, "the finished replay not run again", func() error {
		if j, err := replayJobOf(ctx, c, rj); err == nil {
			return fmt.Errorf("run again as Job %s (created %s); status %+v", j.Name, j.CreationTimestamp, rj.Status)
		}
		get(t, c, rj)
		if rj.Status.Phase != v1alpha1.ReplaySucceeded || rj.Status.Job != "edge-replay-0123abcd" {
			return fmt.Errorf("status %+v", rj.Status)
		}
		return nil
	})
}
