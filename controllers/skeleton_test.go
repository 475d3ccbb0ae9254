package controllers

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
)

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).Build()
}

// beatFor makes obj's figures exist, written once, as a pod of it beating would.
func beatFor(t *testing.T, agg *heartbeat.Aggregator, f *Figures, kind string, obj client.Object) {
	t.Helper()
	now := time.Now()
	agg.Observe(heartbeat.Beat{
		V: heartbeat.Version, Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID()),
		Pod: "pod-a", Node: "node-a", Time: now, StartedAt: now.Add(-time.Minute), Seq: 1, IntervalMS: 5000,
		Counters: heartbeat.Counters{Packets: 10},
	})
	if _, ok, _ := f.take(kind, obj); !ok {
		t.Fatalf("no figures for %s %s", kind, obj.GetName())
	}
}

// forgotten fails unless nothing is kept of obj: neither its figures nor when they were last written.
func forgotten(t *testing.T, f *Figures, kind string, obj client.Object) {
	t.Helper()
	if _, ok := f.Summary(kind, obj); ok {
		t.Errorf("figures of the deleted %s %s are kept", kind, obj.GetName())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.last[resourceKey(kind, obj)]; ok {
		t.Errorf("write time of the deleted %s %s is kept", kind, obj.GetName())
	}
}

// A resource without a finalizer is gone by the time its reconciler hears of the deletion, its UID with it;
// whatever its kind, what the operator kept of its heartbeats is forgotten all the same.
func TestGoneResourceForgetsFigures(t *testing.T) {
	c := fakeClient(t)
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	f := NewFigures(agg, time.Hour)
	rec := record.NewFakeRecorder(100)
	for _, tc := range []struct {
		kind string
		r    reconcile.Reconciler
	}{
		{heartbeat.KindCaptureSensor, &CaptureSensorReconciler{Base: Base{Client: c, Recorder: rec, Figures: f}}},
		{heartbeat.KindReplayJob, &ReplayJobReconciler{Base: Base{Client: c, Recorder: rec, Figures: f}}},
		{heartbeat.KindPacketPipeline, &PacketPipelineReconciler{Base: Base{Client: c, Recorder: rec, Figures: f}}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			gone := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gone", UID: types.UID("uid-" + tc.kind)}}
			kept := gone.DeepCopy()
			kept.Name = "kept"
			beatFor(t, agg, f, tc.kind, gone)
			beatFor(t, agg, f, tc.kind, kept)
			if _, err := tc.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(gone)}); err != nil {
				t.Fatal(err)
			}
			forgotten(t, f, tc.kind, gone)
			if _, ok := f.Summary(tc.kind, kept); !ok {
				t.Errorf("figures of %s forgotten with another's", kept.Name)
			}
		})
	}
}

// A ReplayJob held by someone's finalizer is still there while it is deleted: its figures are forgotten, and
// it is not reconciled, so no Job is applied under an owner on its way out.
func TestReplayJobBeingDeletedForgetsFigures(t *testing.T) {
	rj := &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "going", UID: "uid-going", Finalizers: []string{"example.com/hold"}}}
	c := fakeClient(t, rj)
	ctx := context.Background()
	if err := c.Delete(ctx, rj); err != nil {
		t.Fatal(err)
	}
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	f := NewFigures(agg, time.Hour)
	beatFor(t, agg, f, heartbeat.KindReplayJob, rj)
	r := &ReplayJobReconciler{Base: Base{Client: c, Recorder: record.NewFakeRecorder(100), Figures: f}}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rj)}); err != nil {
		t.Fatal(err)
	}
	forgotten(t, f, heartbeat.KindReplayJob, rj)
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 {
		t.Errorf("%d Jobs applied for a ReplayJob being deleted", len(jobs.Items))
	}
}
