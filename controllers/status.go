package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// Reasons the conditions give. They are part of the API: users and alerts match on them.
const (
	ReasonSucceeded     = "Succeeded"
	ReasonProgressing   = "Progressing"
	ReasonInvalidFilter = "InvalidFilter"
	ReasonApplyFailed   = "ApplyFailed"
	ReasonWaiting       = "WaitingForSource"
	ReasonJobFailed     = "JobFailed"
)

// outcome is what one reconcile learned; summarize turns it into the three kstatus conditions.
type outcome struct {
	// stalled: nothing will change until the spec (or the world) does.
	stalled bool
	// ready: the resource does what its spec says.
	ready bool
	// degraded: it runs as the spec says but does its job badly (drops, silent nodes); nothing is in progress.
	degraded bool
	reason   string
	message  string
}

func progressing(msg string) outcome { return outcome{reason: ReasonProgressing, message: msg} }

// summarize writes Ready, Reconciling and Stalled so that exactly one story is told: Stalled=True means
// Failed to kstatus, Reconciling=True means InProgress, and neither with Ready=True means Current.
func summarize(st *v1alpha1.CommonStatus, generation int64, o outcome) {
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation,
		})
	}
	switch {
	case o.stalled:
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, o.reason, o.message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
	case o.degraded:
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
	case o.ready:
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, o.reason, o.message)
	default:
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, o.reason, "")
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, o.reason, o.message)
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
	}
	st.ObservedGeneration = generation
}

// patchStatus writes the status only when it differs from what was read, so an idle resource costs no writes.
func patchStatus(ctx context.Context, c client.Client, obj client.Object, before client.Object, oldStatus, newStatus any) error {
	if equality.Semantic.DeepEqual(oldStatus, newStatus) {
		return nil
	}
	return c.Status().Patch(ctx, obj, client.MergeFrom(before))
}
