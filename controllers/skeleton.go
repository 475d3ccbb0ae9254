package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// Every reconciler runs the same skeleton, so that what the conditions say, when the status is written and
// what deletion forgets cannot drift apart between kinds: load the object; if it is gone or going, take the
// one deletion path; otherwise run the kind's steps in order and, whatever they did, summarize their outcome
// into Ready, Reconciling and Stalled and patch the status once.

// The skeleton reads every kind and writes its status. The children's owner references block their owner's
// deletion, which the API server allows only to whoever may update the owner's finalizers.
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors;packetpipelines;replayjobs;flowcollectors,verbs=get;list;watch
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors/status;packetpipelines/status;replayjobs/status;flowcollectors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors/finalizers;packetpipelines/finalizers;replayjobs/finalizers;flowcollectors/finalizers,verbs=update

// step is one stage of a reconcile. It records what it learned in the pass; an error ends the pass and is
// reported as the outcome.
type step[T client.Object] func(ctx context.Context, obj T, p *pass) error

// pass is what the steps of one reconcile learn.
type pass struct {
	// outcome is what the conditions will say; a later step has the last word.
	outcome outcome
	// trouble, when set, is told instead of the outcome: a step finds it (a topic that cannot match its spec,
	// Kafka out of reach) but must not hold back the steps after it, nor be hidden by their outcome.
	trouble *outcome
	// requeue is when to look again without a watch event; zero is never.
	requeue time.Duration
	// done ends the pass with the outcome as it stands; the steps after it do not run.
	done bool
}

// stop ends the pass with o.
func (p *pass) stop(o outcome) { p.outcome, p.done = o, true }

// after asks for another look within d; the soonest request wins.
func (p *pass) after(d time.Duration) { p.requeue = shortest(p.requeue, d) }

// kindOf is what the skeleton needs to know of one capfleet kind.
type kindOf[T client.Object] struct {
	// heartbeat is the kind as heartbeats name it, so a deleted object's figures are forgotten.
	heartbeat string
	// status is the part of the status the conditions go to, and the whole status, compared before and after a
	// pass so an idle one writes nothing.
	status func(T) (*v1alpha1.CommonStatus, any)
	// finalize, when set, keeps the kind's finalizer in line and, on deletion, releases what it holds back;
	// it reports whether the object is being deleted.
	finalize func(context.Context, T) (deleting bool, err error)
}

// skeleton runs one kind's reconciles.
type skeleton[T client.Object] struct {
	client.Client
	kind    kindOf[T]
	figures *Figures
}

// reconcile loads the object named by req into obj and runs steps on it, unless it is gone or going.
func (s skeleton[T]) reconcile(ctx context.Context, req ctrl.Request, obj T, steps []step[T]) (res ctrl.Result, err error) {
	if err := s.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			s.figures.forgetGone(s.kind.heartbeat, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if deleting, err := s.deletion(ctx, obj); deleting || err != nil {
		return ctrl.Result{}, err
	}
	before := obj.DeepCopyObject().(T)
	p := &pass{}
	defer func() { err = s.tell(ctx, obj, before, p, err) }()
	for _, run := range steps {
		if err := run(ctx, obj, p); err != nil {
			return ctrl.Result{}, err
		}
		if p.done {
			break
		}
	}
	return ctrl.Result{RequeueAfter: p.requeue}, nil
}

// deletion is the one deletion path of every kind. An object being deleted is not reconciled: its figures
// are forgotten, and its finalizer, if the kind has one, does its work. An object already gone never gets
// here; reconcile forgets it by name. It reports whether the object is being deleted.
func (s skeleton[T]) deletion(ctx context.Context, obj T) (bool, error) {
	deleting := obj.GetDeletionTimestamp() != nil
	if deleting {
		s.figures.forget(s.kind.heartbeat, obj)
	}
	if s.kind.finalize != nil {
		return s.kind.finalize(ctx, obj)
	}
	return deleting, nil
}

// tell summarizes the pass into the conditions and patches the status when it changed. A child the API server
// refuses as Invalid is one the spec makes impossible (a node selector that is no label, say): retrying cannot
// mend it, so the resource is Stalled until its spec changes. Any other error leaves it reconciling. It returns
// the pass's error, or the patch's when that failed.
func (s skeleton[T]) tell(ctx context.Context, obj, before T, p *pass, err error) error {
	o := p.outcome
	switch {
	case apierrors.IsInvalid(err):
		o = outcome{stalled: true, reason: ReasonApplyFailed, message: err.Error()}
	case err != nil:
		o = outcome{reason: ReasonApplyFailed, message: err.Error()}
	case p.trouble != nil:
		o = *p.trouble
	}
	common, _ := s.kind.status(obj)
	summarize(common, obj.GetGeneration(), o)
	_, old := s.kind.status(before)
	_, now := s.kind.status(obj)
	if perr := patchStatus(ctx, s.Client, obj, before, old, now); perr != nil && !apierrors.IsNotFound(perr) {
		return perr
	}
	return err
}
