package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/heartbeat"
)

// A FlowCollector's exporters reach it through a Service of its own.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete

// FlowCollectorReconciler turns a FlowCollector into a Deployment of NetFlow/IPFIX collectors and the UDP
// Service exporters send to.
type FlowCollectorReconciler struct {
	Base
	// ports gives each collector in the node's network node ports of its own; nil leaves them on 9292/9293.
	ports *portBook
}

// Reconcile brings one FlowCollector's Deployment and Service in line with its spec and reports how it runs.
func (r *FlowCollectorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := skeleton[*v1alpha1.FlowCollector]{Client: r.Client, figures: r.Figures, kind: kindOf[*v1alpha1.FlowCollector]{
		heartbeat: heartbeat.KindFlowCollector,
		status: func(fc *v1alpha1.FlowCollector) (*v1alpha1.CommonStatus, any) {
			return &fc.Status.CommonStatus, fc.Status
		},
	}}
	return s.reconcile(ctx, req, &v1alpha1.FlowCollector{}, []step[*v1alpha1.FlowCollector]{
		r.rollOut, r.explainPods, r.figures,
	})
}

// rollOut applies the Service and the Deployment, and reports the rollout.
func (r *FlowCollectorReconciler) rollOut(ctx context.Context, fc *v1alpha1.FlowCollector, p *pass) error {
	if r.ports != nil && r.Options.HostNetwork {
		if err := r.ports.collectorPorts(ctx, r.Client, fc); err != nil {
			return err
		}
	}
	svc := children.CollectorService(fc)
	if err := applyChild(ctx, r.Client, r.Recorder, fc, svc); err != nil {
		return err
	}
	fc.Status.Service = svc.Name
	dep := children.CollectorDeployment(fc, r.Options)
	if err := applyChild(ctx, r.Client, r.Recorder, fc, dep); err != nil {
		return err
	}
	fc.Status.Deployment = dep.Name
	fc.Status.Replicas = dep.Status.Replicas
	fc.Status.ReadyReplicas = dep.Status.ReadyReplicas
	p.outcome = deploymentOutcome(dep, "collectors")
	return nil
}

// explainPods tells why collectors that should run do not, from their pods.
func (r *FlowCollectorReconciler) explainPods(ctx context.Context, fc *v1alpha1.FlowCollector, p *pass) error {
	want := 1
	if fc.Spec.Replicas != nil {
		want = int(*fc.Spec.Replicas)
	}
	sel := children.PodSelector(children.ComponentCollector, fc.Name)
	return explainPods(ctx, r.pods, r.Recorder, fc, &fc.Status.CommonStatus, sel, want, p)
}

// figures brings records/s, exporters, gaps and template errors from the collectors' heartbeats.
func (r *FlowCollectorReconciler) figures(_ context.Context, fc *v1alpha1.FlowCollector, p *pass) error {
	if r.Figures == nil {
		return nil
	}
	if s, ok, wait := r.Figures.take(heartbeat.KindFlowCollector, fc); ok {
		collectorFigures(&fc.Status, s)
	} else {
		p.after(wait)
	}
	return nil
}

// SetupWithManager watches collectors, their Deployments, Services and pods, and their heartbeats.
func (r *FlowCollectorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.controllerFor(mgr, "flowcollector", &v1alpha1.FlowCollector{}, &appsv1.Deployment{}, children.ComponentCollector, heartbeat.KindFlowCollector).
		Owns(&corev1.Service{}).
		Complete(r)
}
