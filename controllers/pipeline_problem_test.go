package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/argocdhealth"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// A processor that keeps retrying a failure says so in its heartbeat: its PacketPipeline, Ready while
// its processors run, turns Degraded with the node and the failure, and back to Ready once the beats
// no longer carry it. At each step Argo CD's health script (config/argocd) reads the status as it should.
func TestPipelineDegradedWhileItsProcessorRetries(t *testing.T) {
	c := cluster(t)
	operator.NeedFigures(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t, c)
	pp := &v1alpha1.PacketPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "retrying"},
		Spec: v1alpha1.PacketPipelineSpec{
			Source: v1alpha1.PipelineSource{Topic: "mirror.packets"},
			Sinks:  v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: "k", ReplicationFactor: 1}},
		},
	}
	if err := c.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	script, err := argocdhealth.Script()
	if err != nil {
		t.Fatal(err)
	}
	// Argo CD's view of the status the operator wrote, through the health script it would run.
	argo := func(status, text string) func() error {
		return func() error {
			get(t, c, pp)
			h, err := argocdhealth.Eval(script, pp)
			if err != nil {
				return err
			}
			if h.Status != status || !strings.Contains(h.Message, text) {
				return fmt.Errorf("Argo CD health %+v, want %s with %q", h, status, text)
			}
			return nil
		}
	}
	eventually(t, "Argo CD: Progressing while no processor is available", argo("Progressing", "Deployment retrying-processor"))
	// No Deployment controller runs in envtest: report the one processor available, as it would.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "retrying-processor"}}
	eventually(t, "Deployment available", func() error {
		if err := c.Get(ctx, key(dep), dep); err != nil {
			return err
		}
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		return c.Status().Update(ctx, dep)
	})
	ready := func(reason, text string) func() error {
		return func() error {
			get(t, c, pp)
			r := condition(pp, v1alpha1.ConditionReady)
			if r == nil || r.Reason != reason || !strings.Contains(r.Message, text) {
				return fmt.Errorf("Ready %+v", r)
			}
			return nil
		}
	}
	eventually(t, "Ready", ready("Succeeded", "processors ready"))
	eventually(t, "Argo CD: Healthy", argo("Healthy", "1 of 1 processors ready"))

	var problem atomic.Value
	problem.Store("")
	pub, err := heartbeat.Dial(heartbeat.Config{
		Topic: statsTopic, Interval: 200 * time.Millisecond, Kind: heartbeat.KindPacketPipeline,
		Namespace: ns, Name: pp.Name, UID: string(pp.UID), Pod: "retrying-processor-x", Node: "node-b",
		Problem: func() string { return problem.Load().(string) },
	}, kafkatest.Plain(t), func() heartbeat.Counters { return heartbeat.Counters{RecordsIn: 1} }, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	go pub.Run(ctx)
	const failure = "cassandra: write: Cannot achieve consistency level LOCAL_QUORUM (failing since 2026-12-06T10:00:00Z, 12 times)"
	problem.Store(failure)
	eventually(t, "Degraded with the node and the failure", ready("Degraded", "the processor on node-b retries a failure: "+failure))
	eventually(t, "Argo CD: Degraded", argo("Degraded", failure))
	problem.Store("")
	eventually(t, "Ready again", ready("Succeeded", "processors ready"))
	eventually(t, "Argo CD: Healthy again", argo("Healthy", "processors ready"))
	change(t, c, pp, func() { pp.Spec.Flows.Filter = "flow.no_such_field > 1" })
	eventually(t, "Argo CD: Degraded by an invalid flow filter", argo("Degraded", "spec.flows.filter"))
}
