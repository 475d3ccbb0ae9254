package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/argocdhealth"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// A FlowCollector becomes a Deployment running `capfleet collect` and the UDP Service exporters send to
// (each exporter kept on one pod); it is Ready once its collectors are, and its status reports the
// records/s, exporters, sequence gaps and template errors its collectors' heartbeats carry.
func TestFlowCollectorLifecycle(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)
	fc := &v1alpha1.FlowCollector{}
	sample(t, "capture_v1alpha1_flowcollector.yaml", ns, fc)
	if err := c.Create(ctx, fc); err != nil {
		t.Fatalf("sample rejected: %v", err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "routers-collector"}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "routers-collector"}}
	eventually(t, "Service and Deployment created", func() error {
		if err := c.Get(ctx, key(svc), svc); err != nil {
			return err
		}
		return c.Get(ctx, key(dep), dep)
	})
	controlledBy(t, svc, fc, "FlowCollector")
	controlledBy(t, dep, fc, "FlowCollector")
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Protocol != corev1.ProtocolUDP || p[0].Port != 2055 || p[0].TargetPort.IntValue() != 2055 ||
		svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("Service %+v", svc.Spec)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if err := hasArgs(ctr, "collect", "--listen=:2055", "--template-timeout=30m0s", "--keyspace=capfleet", "--flow-ttl=720h0m0s",
		"--cassandra-hosts=cassandra.test"); err != nil {
		t.Error(err)
	}
	udp := false
	for _, p := range ctr.Ports {
		udp = udp || (p.ContainerPort == 2055 && p.Protocol == corev1.ProtocolUDP)
	}
	if !udp {
		t.Errorf("container ports %+v lack UDP 2055", ctr.Ports)
	}
	if sc := ctr.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("collector must run as non-root: %+v", sc)
	}

	// Argo CD's view through the health script it would run (its "_" matches this kind too): Progressing
	// while no collector is available, Healthy once the operator says Ready.
	script, err := argocdhealth.Script()
	if err != nil {
		t.Fatal(err)
	}
	argo := func(status string) func() error {
		return func() error {
			get(t, c, fc)
			h, err := argocdhealth.Eval(script, fc)
			if err != nil {
				return err
			}
			if h.Status != status {
				return fmt.Errorf("Argo CD health %+v, want %s", h, status)
			}
			return nil
		}
	}
	eventually(t, "Argo CD: Progressing while no collector is available", argo("Progressing"))

	// No Deployment controller runs in envtest: report the collector available, as it would.
	eventually(t, "Deployment available", func() error {
		get(t, c, dep)
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		return c.Status().Update(ctx, dep)
	})
	eventually(t, "Ready", func() error {
		get(t, c, fc)
		r := condition(fc, v1alpha1.ConditionReady)
		if r == nil || r.Status != metav1.ConditionTrue || fc.Status.Service != svc.Name || fc.Status.ReadyReplicas != 1 {
			return fmt.Errorf("Ready %+v, status %+v", r, fc.Status)
		}
		return nil
	})
	eventually(t, "Argo CD: Healthy once Ready", argo("Healthy"))

	t.Run("spec changes reach the Service", func(t *testing.T) {
		change(t, c, fc, func() { fc.Spec.Port = 4739; fc.Spec.ServiceType = corev1.ServiceTypeClusterIP })
		eventually(t, "port 4739, ClusterIP", func() error {
			get(t, c, svc)
			if p := svc.Spec.Ports; len(p) != 1 || p[0].Port != 4739 || svc.Spec.Type != corev1.ServiceTypeClusterIP {
				return fmt.Errorf("Service %+v", svc.Spec)
			}
			get(t, c, dep)
			return hasArgs(dep.Spec.Template.Spec.Containers[0], "--listen=:4739")
		})
	})

	t.Run("status from heartbeats", func(t *testing.T) {
		operator.NeedFigures(t)
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		const rps = 1000
		start := time.Now()
		pub, err := heartbeat.Dial(heartbeat.Config{
			Topic: statsTopic, Interval: 500 * time.Millisecond, Kind: heartbeat.KindFlowCollector,
			Namespace: ns, Name: fc.Name, UID: string(fc.UID), Pod: "routers-collector-x", Node: "node-c",
		}, kafkatest.Plain(t), func() heartbeat.Counters {
			n := uint64(time.Since(start).Seconds() * rps)
			return heartbeat.Counters{RecordsIn: n, RecordsOut: n, FlowsWritten: n, SequenceGaps: 7, DecodeErrors: 2, Exporters: 3}
		}, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		go pub.Run(bctx)
		deadline := time.Now().Add(60 * time.Second)
		for {
			get(t, c, fc)
			s := fc.Status
			if s.RecordsPerSecond >= rps*95/100 && s.RecordsPerSecond <= rps*105/100 && s.Exporters == 3 && s.SequenceGaps == 7 && s.TemplateErrors == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %+v, want %d records/s, 3 exporters, 7 gaps, 2 template errors", s, rps)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}
