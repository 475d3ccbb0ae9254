package controllers_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// sensorServesOn fails unless the sensor's DaemonSet serves metrics and health, binds the node ports and
// probes exactly on the ports its status names.
func sensorServesOn(c client.Client, cs *v1alpha1.CaptureSensor) error {
	ds := &appsv1.DaemonSet{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: cs.Namespace, Name: cs.Status.DaemonSet}, ds); err != nil {
		return err
	}
	m, h := cs.Status.MetricsPort, cs.Status.HealthPort
	if m == 0 || h != m+1 {
		return fmt.Errorf("status ports %d/%d", m, h)
	}
	ctr := ds.Spec.Template.Spec.Containers[0]
	if err := hasArgs(ctr, "--metrics-addr=:"+strconv.Itoa(int(m)), "--health-addr=:"+strconv.Itoa(int(h))); err != nil {
		return err
	}
	if len(ctr.Ports) != 2 || ctr.Ports[0].ContainerPort != m || ctr.Ports[1].ContainerPort != h {
		return fmt.Errorf("container ports %+v, status %d/%d", ctr.Ports, m, h)
	}
	if ctr.ReadinessProbe.HTTPGet.Port.IntVal != h || ctr.LivenessProbe.HTTPGet.Port.IntVal != h {
		return fmt.Errorf("probes on %v/%v, health on %d", ctr.ReadinessProbe.HTTPGet.Port, ctr.LivenessProbe.HTTPGet.Port, h)
	}
	return nil
}

// Sensors share their node's network: every CaptureSensor gets node ports no other one has, created all at
// once or not, in any namespace, and keeps them. (The unit test of the port book covers a restored status.)
func TestSensorsGetPortsOfTheirOwn(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	nsA, nsB := namespace(t, c), namespace(t, c)
	var sensors []*v1alpha1.CaptureSensor
	for i, ns := range []string{nsA, nsA, nsB, nsB, nsB} {
		cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s%d", i)},
			Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}}}
		if err := c.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		sensors = append(sensors, cs)
	}
	distinct := func() error {
		var all v1alpha1.CaptureSensorList
		if err := c.List(ctx, &all); err != nil {
			return err
		}
		seen := map[int32]string{}
		for _, cs := range all.Items {
			if cs.DeletionTimestamp != nil {
				continue
			}
			for _, p := range []int32{cs.Status.MetricsPort, cs.Status.HealthPort} {
				if p == 0 {
					return fmt.Errorf("%s/%s has no ports yet", cs.Namespace, cs.Name)
				}
				if other, ok := seen[p]; ok {
					return fmt.Errorf("port %d held by %s and %s/%s", p, other, cs.Namespace, cs.Name)
				}
				seen[p] = cs.Namespace + "/" + cs.Name
			}
		}
		for _, cs := range sensors {
			get(t, c, cs)
			if err := sensorServesOn(c, cs); err != nil {
				return fmt.Errorf("%s/%s: %w", cs.Namespace, cs.Name, err)
			}
		}
		return nil
	}
	eventually(t, "every sensor on ports of its own", distinct)

	t.Run("a sensor keeps its ports", func(t *testing.T) {
		cs := sensors[2]
		get(t, c, cs)
		before := cs.Status.MetricsPort
		change(t, c, cs, func() { cs.Spec.Filter = "tcp" })
		eventually(t, "filter rolled out", func() error {
			get(t, c, cs)
			if cs.Status.ObservedGeneration != cs.Generation {
				return fmt.Errorf("observed %d of %d", cs.Status.ObservedGeneration, cs.Generation)
			}
			return nil
		})
		if cs.Status.MetricsPort != before {
			t.Errorf("metrics port moved from %d to %d on a spec change", before, cs.Status.MetricsPort)
		}
	})

	t.Run("a status edited onto another sensor's ports does not make them clash", func(t *testing.T) {
		older, younger := sensors[0], sensors[4]
		get(t, c, older)
		taken := older.Status.MetricsPort
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			get(t, c, younger)
			younger.Status.MetricsPort, younger.Status.HealthPort = taken, taken+1
			return c.Status().Update(ctx, younger)
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "ports distinct again, the older sensor's unchanged", func() error {
			if err := distinct(); err != nil {
				return err
			}
			get(t, c, older)
			if older.Status.MetricsPort != taken {
				return fmt.Errorf("the older sensor moved from %d to %d", taken, older.Status.MetricsPort)
			}
			return nil
		})
	})
}
