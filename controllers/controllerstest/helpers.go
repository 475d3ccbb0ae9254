package controllerstest

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// Namespace makes a fresh namespace for one test, so tests never see each other's objects.
func Namespace(t testing.TB, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "capfleet-test-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// Get refreshes obj from the API server.
func Get(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
}

// RunningSensor creates a CaptureSensor capturing iface, degraded above 1% drops, and reports its one sensor
// scheduled and ready in its DaemonSet, as the DaemonSet controller would: envtest runs none.
func RunningSensor(t testing.TB, c client.Client, ns, name, iface string) *v1alpha1.CaptureSensor {
	t.Helper()
	ctx := context.Background()
	cs := &v1alpha1.CaptureSensor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.CaptureSensorSpec{Interfaces: []string{iface}, DropThresholdPercent: 1},
	}
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	Get(t, c, cs)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: children.SensorDaemonSetName(cs)}}
	Eventually(t, "DaemonSet reported ready", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1, CurrentNumberScheduled: 1,
			UpdatedNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1}
		return c.Status().Update(ctx, ds)
	})
	return cs
}

// Eventually retries check until it returns nil, failing the test with its last error after 30 s.
func Eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Consistently checks, every 100 ms for the given time, that check still returns nil, failing at the first
// error. It is for absences, after a positive sign (Reconciles.After) that what should not happen had its chance.
func Consistently(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
	}
}
