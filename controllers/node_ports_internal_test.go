package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

func sensorAt(name string, created time.Time, port int32) *v1alpha1.CaptureSensor {
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created),
	}}
	cs.Status.MetricsPort = port
	if port != 0 {
		cs.Status.HealthPort = port + 1
	}
	return cs
}

// After a restart (an empty book), two sensors whose statuses claim one pair, as a restore from backup can
// leave them: the older keeps it, the younger moves to the first free pair.
func TestPortBookOlderSensorKeepsAContestedPair(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	older, younger, other := sensorAt("older", t0, 9400), sensorAt("younger", t0.Add(time.Hour), 9400), sensorAt("other", t0, 9090)
	c := fakeClient(t, older, younger, other)
	b := &portBook{}
	ctx := context.Background()
	for _, cs := range []*v1alpha1.CaptureSensor{younger, older} {
		if err := b.sensorPorts(ctx, c, cs); err != nil {
			t.Fatal(err)
		}
	}
	if older.Status.MetricsPort != 9400 || older.Status.HealthPort != 9401 {
		t.Errorf("older sensor moved to %d/%d", older.Status.MetricsPort, older.Status.HealthPort)
	}
	if younger.Status.MetricsPort != 9402 || younger.Status.HealthPort != 9403 {
		t.Errorf("younger sensor on %d/%d, want the first free pair 9402/9403", younger.Status.MetricsPort, younger.Status.HealthPort)
	}
}

// A new sensor takes the first pair nobody holds, counting pairs handed out whose status is not written yet;
// a deleted sensor's pair is free again.
func TestPortBookHandsOutFreePairs(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, b2, d := sensorAt("a", t0, 0), sensorAt("b", t0, 0), sensorAt("d", t0, 0)
	c := fakeClient(t, a, b2, d)
	b := &portBook{}
	ctx := context.Background()
	var got []int32
	for _, cs := range []*v1alpha1.CaptureSensor{a, b2, d} {
		if err := b.sensorPorts(ctx, c, cs); err != nil { // statuses are never written: only the book knows
			t.Fatal(err)
		}
		got = append(got, cs.Status.MetricsPort)
	}
	if fmt.Sprint(got) != "[9090 9400 9402]" {
		t.Fatalf("pairs %v", got)
	}
	if err := c.Delete(ctx, b2); err != nil {
		t.Fatal(err)
	}
	e := sensorAt("e", t0, 0)
	if err := c.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := b.sensorPorts(ctx, c, e); err != nil {
		t.Fatal(err)
	}
	if e.Status.MetricsPort != 9400 {
		t.Errorf("new sensor on %d, want the deleted one's 9400", e.Status.MetricsPort)
	}
}

// When every pair is held the sensor is not rolled out on a clashing one: the reconcile fails saying why.
func TestPortBookFullSaysSo(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var objs []client.Object
	for i, p := range sensorPortPairs() {
		objs = append(objs, sensorAt(fmt.Sprintf("s%d", i), t0, p))
	}
	last := sensorAt("late", t0.Add(time.Hour), 0)
	c := fakeClient(t, append(objs, last)...)
	err := (&portBook{}).sensorPorts(context.Background(), c, last)
	if err == nil || !strings.Contains(err.Error(), "no free pair of node ports") {
		t.Fatalf("err %v", err)
	}
}

// Processors in their node's network draw from the same book as sensors: the first pipeline keeps the
// processors' old pair 9290/9291, the next ones get pairs no sensor holds, and the Deployments bind them.
func TestPortBookGivesPipelinesTheirOwnPairs(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s1, s2 := sensorAt("s1", t0, 9090), sensorAt("s2", t0, 9400)
	pipe := func(name string) *v1alpha1.PacketPipeline {
		return &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(t0.Add(time.Minute))}}
	}
	p1, p2, p3 := pipe("p1"), pipe("p2"), pipe("p3")
	c := fakeClient(t, s1, s2, p1, p2, p3)
	b := &portBook{}
	var got []int32
	for _, pp := range []*v1alpha1.PacketPipeline{p1, p2, p3} {
		if err := b.pipelinePorts(context.Background(), c, pp); err != nil {
			t.Fatal(err)
		}
		if pp.Status.HealthPort != pp.Status.MetricsPort+1 {
			t.Errorf("%s: health port %d after metrics port %d", pp.Name, pp.Status.HealthPort, pp.Status.MetricsPort)
		}
		got = append(got, pp.Status.MetricsPort)
	}
	if fmt.Sprint(got) != "[9290 9402 9404]" {
		t.Errorf("pipelines got metrics ports %v, want [9290 9402 9404] (9400 is s2's)", got)
	}
	dep := children.PipelineDeployment(p2, "t", children.Options{HostNetwork: true})
	ports := dep.Spec.Template.Spec.Containers[0].Ports
	if len(ports) != 2 || ports[0].ContainerPort != 9402 || ports[1].ContainerPort != 9403 || !strings.Contains(strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "), "--metrics-addr=:9402") {
		t.Errorf("p2's processors bind %+v, args %v", ports, dep.Spec.Template.Spec.Containers[0].Args)
	}
}

// Flow collectors in their node's network draw from the same book: the first keeps 9292/9293, a second
// one gets a pair no sensor or pipeline holds, and its Deployment binds it (they used to share 9292/9293,
// so the second collector on a node stayed pending).
func TestPortBookGivesCollectorsTheirOwnPairs(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s1 := sensorAt("s1", t0, 9400)
	pp := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid-p", CreationTimestamp: metav1.NewTime(t0)}}
	pp.Status.MetricsPort, pp.Status.HealthPort = 9402, 9403
	coll := func(name string) *v1alpha1.FlowCollector {
		return &v1alpha1.FlowCollector{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(t0.Add(time.Minute))}}
	}
	c1, c2 := coll("c1"), coll("c2")
	c := fakeClient(t, s1, pp, c1, c2)
	b := &portBook{}
	for _, fc := range []*v1alpha1.FlowCollector{c1, c2} {
		if err := b.collectorPorts(context.Background(), c, fc); err != nil {
			t.Fatal(err)
		}
	}
	if c1.Status.MetricsPort != 9292 || c1.Status.HealthPort != 9293 || c2.Status.MetricsPort != 9404 || c2.Status.HealthPort != 9405 {
		t.Fatalf("collectors on %d/%d and %d/%d, want 9292/9293 and 9404/9405 (9400 and 9402 are held)",
			c1.Status.MetricsPort, c1.Status.HealthPort, c2.Status.MetricsPort, c2.Status.HealthPort)
	}
	dep := children.CollectorDeployment(c2, children.Options{HostNetwork: true})
	ctr := dep.Spec.Template.Spec.Containers[0]
	args := strings.Join(ctr.Args, " ")
	if !strings.Contains(args, "--metrics-addr=:9404") || !strings.Contains(args, "--health-addr=:9405") || ctr.ReadinessProbe.HTTPGet.Port.IntValue() != 9405 {
		t.Errorf("c2's collectors: args %v, readiness %+v", ctr.Args, ctr.ReadinessProbe.HTTPGet)
	}
	if d := children.CollectorDeployment(c2, children.Options{}); !strings.Contains(strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "), "--metrics-addr=:9090") {
		t.Errorf("in a network of their own collectors keep the usual pair: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
}
