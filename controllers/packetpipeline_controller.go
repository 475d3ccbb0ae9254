package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
	"capfleet.dev/capfleet/heartbeat"
)

// PacketPipelineReconciler turns a PacketPipeline into a Deployment of processors.
type PacketPipelineReconciler struct {
	Base
	// ports gives processors in their node's network node ports of their own; nil keeps the first pair.
	ports *portBook
}

// Reconcile brings one PacketPipeline's Deployment in line with its spec and reports how it runs.
func (r *PacketPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := skeleton[*v1alpha1.PacketPipeline]{Client: r.Client, figures: r.Figures, kind: kindOf[*v1alpha1.PacketPipeline]{
		heartbeat: heartbeat.KindPacketPipeline,
		status: func(pp *v1alpha1.PacketPipeline) (*v1alpha1.CommonStatus, any) {
			return &pp.Status.CommonStatus, pp.Status
		},
		finalize: func(ctx context.Context, pp *v1alpha1.PacketPipeline) (bool, error) {
			return finalizeTopics(ctx, r.Client, r.Topics, pp, pp.Spec.TopicDeletionPolicy, pp.Status.Topics)
		},
	}}
	return s.reconcile(ctx, req, &v1alpha1.PacketPipeline{}, []step[*v1alpha1.PacketPipeline]{
		r.checkFilter, r.findSource, r.tendTopic, r.rollOut, r.explainPods, r.figures,
	})
}

// checkFilter refuses a filter the processors would refuse (libpcap's BPF, the display filter, the flow
// filter) before anything rolls out, so that they never start with one.
func (r *PacketPipelineReconciler) checkFilter(_ context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	for _, f := range []struct {
		field, expr string
		check       func(string) error
	}{
		{"spec.filter", pp.Spec.Filter, checkPipelineFilter},
		{"spec.displayFilter", pp.Spec.DisplayFilter, checkPipelineDisplayFilter},
		{"spec.flows.filter", pp.Spec.Flows.Filter, checkPipelineFlowFilter},
	} {
		refuseFilter(r.Recorder, pp, p, f.field, f.expr, f.check(f.expr))
		if p.done {
			return nil
		}
	}
	return nil
}

// findSource finds the packets topic. A sensor applied later (GitOps applies in any order) is waited for, not
// an error.
func (r *PacketPipelineReconciler) findSource(ctx context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	topic := pp.Spec.Source.Topic
	if name := pp.Spec.Source.Sensor; name != "" {
		cs := &v1alpha1.CaptureSensor{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: pp.Namespace, Name: name}, cs); err != nil {
			if !apierrors.IsNotFound(err) {
				return err
			}
			p.stop(outcome{reason: ReasonWaiting, message: fmt.Sprintf("CaptureSensor %q not found in namespace %s", name, pp.Namespace)})
			p.after(time.Minute)
			return nil
		}
		topic = children.SensorTopic(cs)
	}
	pp.Status.SourceTopic = topic
	return nil
}

// tendTopic makes the flows and packet records topics exist when their sinks are on and writes to the operator's Kafka.
func (r *PacketPipelineReconciler) tendTopic(ctx context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	if r.Topics == nil || !usesDefaultKafka(pp.Spec.Kafka) {
		return nil
	}
	var wants []topics.Want
	if k := pp.Spec.Sinks.Kafka; k != nil {
		wants = append(wants, topicWant(children.FlowsTopic(pp), k.Topic))
	}
	if k := pp.Spec.Sinks.PacketRecords; k != nil {
		wants = append(wants, topicWant(children.RecordsTopic(pp), k.Topic))
	}
	if len(wants) > 0 {
		tendTopicsStep(ctx, r.Topics, wants, &pp.Status.Topics, p)
	}
	return nil
}

// rollOut applies the Deployment reading the source topic findSource found, and reports its rollout.
func (r *PacketPipelineReconciler) rollOut(ctx context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	if r.ports != nil && r.Options.HostNetwork {
		if err := r.ports.pipelinePorts(ctx, r.Client, pp); err != nil {
			return err
		}
	}
	dep := children.PipelineDeployment(pp, pp.Status.SourceTopic, r.Options)
	if err := applyChild(ctx, r.Client, r.Recorder, pp, dep); err != nil {
		return err
	}
	pp.Status.Deployment = dep.Name
	pp.Status.Replicas = dep.Status.Replicas
	pp.Status.ReadyReplicas = dep.Status.ReadyReplicas
	p.outcome = deploymentOutcome(dep, "processors")
	return nil
}

// explainPods tells why processors that should run do not, from their pods.
func (r *PacketPipelineReconciler) explainPods(ctx context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	want := 1
	if pp.Spec.Replicas != nil {
		want = int(*pp.Spec.Replicas)
	}
	sel := children.PodSelector(children.ComponentProcessor, pp.Name)
	return explainPods(ctx, r.pods, r.Recorder, pp, &pp.Status.CommonStatus, sel, want, p)
}

// figures brings throughput, lag and errors from the processors' heartbeats, rewritten at most once per
// status interval; between rewrites a degraded pipeline stays degraded rather than flapping to Ready.
func (r *PacketPipelineReconciler) figures(_ context.Context, pp *v1alpha1.PacketPipeline, p *pass) error {
	if r.Figures == nil {
		return nil
	}
	var degraded string
	if s, ok, wait := r.Figures.take(heartbeat.KindPacketPipeline, pp); ok {
		degraded = pipelineFigures(&pp.Status, s)
	} else {
		p.after(wait)
		degraded = lastDegraded(pp.Status.Conditions)
	}
	if degraded != "" && p.outcome.ready {
		p.outcome = outcome{degraded: true, reason: ReasonDegraded, message: degraded}
	}
	return nil
}

// deploymentOutcome says whether every wanted pod of the current spec is available; what names the pods
// ("processors", "collectors") in the message.
func deploymentOutcome(d *appsv1.Deployment, what string) outcome {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return progressing("Deployment " + d.Name + " has not yet seen the new spec")
	case st.UpdatedReplicas < want:
		return progressing(fmt.Sprintf("%d of %d %s run the current spec", st.UpdatedReplicas, want, what))
	case st.AvailableReplicas < want || st.ReadyReplicas < want:
		return progressing(fmt.Sprintf("%d of %d %s ready", st.ReadyReplicas, want, what))
	case st.Replicas > want:
		return progressing(fmt.Sprintf("%d old %s still terminating", st.Replicas-want, what))
	}
	return outcome{ready: true, reason: ReasonSucceeded, message: fmt.Sprintf("%d of %d %s ready", st.ReadyReplicas, want, what)}
}

// SetupWithManager watches pipelines, what they own and run, and the sensors they read from.
func (r *PacketPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.controllerFor(mgr, "packetpipeline", &v1alpha1.PacketPipeline{}, &appsv1.Deployment{}, children.ComponentProcessor, heartbeat.KindPacketPipeline).
		Watches(&v1alpha1.CaptureSensor{}, handler.EnqueueRequestsFromMapFunc(r.pipelinesReading)).
		Complete(r)
}

// pipelinesReading maps a sensor to the pipelines that read its topic, so they follow a topic change.
func (r *PacketPipelineReconciler) pipelinesReading(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.PacketPipelineList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, pp := range list.Items {
		if pp.Spec.Source.Sensor == obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pp)})
		}
	}
	return reqs
}
