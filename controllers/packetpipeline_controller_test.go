package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

func TestPacketPipelineLifecycle(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	// GitOps tools apply in any order: the pipeline comes first and waits for its sensor.
	pp := &v1alpha1.PacketPipeline{}
	sample(t, "capture_v1alpha1_packetpipeline.yaml", ns, pp)
	if err := c.Create(ctx, pp); err != nil {
		t.Fatalf("sample rejected: %v", err)
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge-flows-processor"}}
	eventually(t, "waiting for the sensor", func() error {
		get(t, c, pp)
		r := condition(pp, v1alpha1.ConditionReconciling)
		if r == nil || r.Status != metav1.ConditionTrue || r.Reason != "WaitingForSource" {
			return fmt.Errorf("Reconciling %+v", r)
		}
		return nil
	})
	if err := c.Get(ctx, key(dep), dep); !apierrors.IsNotFound(err) {
		t.Fatalf("Deployment exists before its source: %v", err)
	}

	cs := &v1alpha1.CaptureSensor{}
	sample(t, "capture_v1alpha1_capturesensor.yaml", ns, cs)
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Deployment created once the sensor exists", func() error { return c.Get(ctx, key(dep), dep) })
	controlledBy(t, dep, pp, "PacketPipeline")
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if err := hasArgs(ctr, "process", "--topic="+ns+".edge.packets", "--group=capfleet."+ns+".edge-flows",
		"--store-packets", "--store-flows", "--keyspace=capfleet", "--flows-topic="+ns+".edge-flows.flows",
		"--cassandra-hosts=cassandra.test", "--flow-idle-timeout=1m0s", "--sensor=edge"); err != nil {
		t.Error(err)
	}
	if sc := ctr.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 {
		t.Errorf("processor must run as non-root with no capabilities: %+v", sc)
	}

	t.Run("credentials reach the pod only as a mounted Secret", func(t *testing.T) {
		change(t, c, pp, func() {
			pp.Spec.Sinks.Cassandra.Connection = &v1alpha1.CassandraConnection{SecretRef: &corev1.LocalObjectReference{Name: "cassandra-creds"}}
			pp.Spec.Kafka = &v1alpha1.KafkaConnection{TLS: ptrTo(true), SecretRef: &corev1.LocalObjectReference{Name: "kafka-creds"}}
		})
		eventually(t, "secrets mounted", func() error {
			get(t, c, dep)
			pod := dep.Spec.Template.Spec
			mounted := map[string]string{}
			for _, v := range pod.Volumes {
				if v.Secret != nil {
					mounted[v.Secret.SecretName] = v.Name
				}
			}
			if mounted["cassandra-creds"] == "" || mounted["kafka-creds"] == "" {
				return fmt.Errorf("secret volumes %v", mounted)
			}
			return hasArgs(pod.Containers[0], "--cassandra-secret-dir=/etc/capfleet/cassandra", "--kafka-secret-dir=/etc/capfleet/kafka", "--kafka-tls")
		})
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("secret exposed as environment variable %s", e.Name)
			}
		}
		for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
			if strings.Contains(strings.ToLower(a), "password") {
				t.Errorf("argument %q mentions a password", a)
			}
		}
	})

	t.Run("a spec change reaches the Deployment and a hand edit is undone", func(t *testing.T) {
		change(t, c, pp, func() {
			pp.Spec.Replicas = ptrTo(int32(3))
		})
		eventually(t, "3 replicas", func() error {
			get(t, c, dep)
			if *dep.Spec.Replicas != 3 {
				return fmt.Errorf("replicas %d", *dep.Spec.Replicas)
			}
			return nil
		})
		change(t, c, dep, func() {
			dep.Spec.Replicas = ptrTo(int32(7))
		}, client.FieldOwner("kubectl-scale"))
		eventually(t, "back to 3 replicas", func() error {
			get(t, c, dep)
			if *dep.Spec.Replicas != 3 {
				return fmt.Errorf("replicas %d", *dep.Spec.Replicas)
			}
			return nil
		})
	})

	t.Run("Current once the processors are available", func(t *testing.T) {
		eventually(t, "status written", func() error {
			get(t, c, dep)
			dep.Status = appsv1.DeploymentStatus{
				ObservedGeneration: dep.Generation, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}},
			}
			return c.Status().Update(ctx, dep)
		})
		eventually(t, "kstatus Current", func() error {
			get(t, c, pp)
			if s := kstatusOf(t, pp); s != status.CurrentStatus || pp.Status.ReadyReplicas != 3 {
				return fmt.Errorf("kstatus %s ready %d conditions %+v", s, pp.Status.ReadyReplicas, pp.Status.Conditions)
			}
			return nil
		})
	})

	t.Run("an invalid filter stalls and leaves the Deployment alone", func(t *testing.T) {
		get(t, c, dep)
		rv := dep.ResourceVersion
		change(t, c, pp, func() {
			pp.Spec.Filter = "host 10.0.0.300"
		})
		eventually(t, "Stalled", func() error {
			get(t, c, pp)
			st := condition(pp, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || !strings.Contains(st.Message, "10.0.0.300") {
				return fmt.Errorf("Stalled %+v", st)
			}
			if s := kstatusOf(t, pp); s != status.FailedStatus {
				return fmt.Errorf("kstatus %s", s)
			}
			return nil
		})
		get(t, c, dep)
		if dep.ResourceVersion != rv {
			t.Errorf("Deployment changed under an invalid filter")
		}
	})

	t.Run("an invalid display filter stalls with the parser's column; a valid one reaches the processors", func(t *testing.T) {
		get(t, c, dep)
		rv := dep.ResourceVersion
		change(t, c, pp, func() {
			pp.Spec.Filter = ""
			pp.Spec.DisplayFilter = "tcp.port == 70000"
		})
		eventually(t, "Stalled", func() error {
			get(t, c, pp)
			st := condition(pp, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "InvalidFilter" ||
				!strings.Contains(st.Message, "spec.displayFilter") || !strings.Contains(st.Message, "column 13") {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
		get(t, c, dep)
		if dep.ResourceVersion != rv {
			t.Errorf("Deployment changed under an invalid display filter")
		}
		change(t, c, pp, func() { pp.Spec.DisplayFilter = "ip.addr == 10.0.0.0/8 && tcp.flags.syn == 1" })
		eventually(t, "no longer stalled, Deployment updated", func() error {
			get(t, c, pp)
			if st := condition(pp, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
				return fmt.Errorf("Stalled %+v", st)
			}
			get(t, c, dep)
			return hasArgs(dep.Spec.Template.Spec.Containers[0], "--display-filter=ip.addr == 10.0.0.0/8 && tcp.flags.syn == 1")
		})
	})

	t.Run("an invalid flow filter stalls with the parser's message; a valid one reaches the processors", func(t *testing.T) {
		get(t, c, dep)
		rv := dep.ResourceVersion
		change(t, c, pp, func() { pp.Spec.Flows.Filter = "conn_state == S0 && flow.no_such_field > 1" })
		eventually(t, "Stalled", func() error {
			get(t, c, pp)
			st := condition(pp, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "InvalidFilter" ||
				!strings.Contains(st.Message, "spec.flows.filter") || !strings.Contains(st.Message, "no_such_field") {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
		get(t, c, dep)
		if dep.ResourceVersion != rv {
			t.Errorf("Deployment changed under an invalid flow filter")
		}
		const valid = `conn_state != "S0" && flow.bytes > 1000`
		change(t, c, pp, func() { pp.Spec.Flows.Filter = valid })
		eventually(t, "no longer stalled, Deployment updated", func() error {
			get(t, c, pp)
			if st := condition(pp, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
				return fmt.Errorf("Stalled %+v", st)
			}
			get(t, c, dep)
			return hasArgs(dep.Spec.Template.Spec.Containers[0], "--flow-filter="+valid)
		})
	})

	t.Run("a topic source needs no sensor", func(t *testing.T) {
		p2 := &v1alpha1.PacketPipeline{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "raw"},
			Spec: v1alpha1.PacketPipelineSpec{
				Source: v1alpha1.PipelineSource{Topic: "mirror.packets"},
				Sinks:  v1alpha1.PipelineSinks{Kafka: &v1alpha1.KafkaFlowSink{}, Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: "k", ReplicationFactor: 1}},
			},
		}
		if err := c.Create(ctx, p2); err != nil {
			t.Fatal(err)
		}
		d2 := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "raw-processor"}}
		eventually(t, "Deployment", func() error {
			if err := c.Get(ctx, key(d2), d2); err != nil {
				return err
			}
			return hasArgs(d2.Spec.Template.Spec.Containers[0], "--topic=mirror.packets", "--flows-topic="+ns+".raw.flows")
		})
		for _, a := range d2.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--store-packets") {
				t.Errorf("a pipeline that stores no packets got %s", a)
			}
		}
	})
}
