package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

func TestCaptureSensorLifecycle(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := namespace(t, c)

	cs := &v1alpha1.CaptureSensor{}
	sample(t, "capture_v1alpha1_capturesensor.yaml", ns, cs)
	if err := c.Create(ctx, cs); err != nil {
		t.Fatalf("sample rejected: %v", err)
	}

	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge-sensor"}}
	eventually(t, "DaemonSet created", func() error { return c.Get(ctx, key(ds), ds) })
	controlledBy(t, ds, cs, "CaptureSensor")

	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("sensor pods must use the host network to see the node's interfaces")
	}
	if pod.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("node selector not carried over: %v", pod.NodeSelector)
	}
	ctr := pod.Containers[0]
	if err := hasArgs(ctr, "sensor", "--interfaces=eth0", "--filter=tcp or udp", "--snaplen=1514",
		"--topic="+ns+".edge.packets", "--kafka-brokers=kafka.test:9092"); err != nil {
		t.Error(err)
	}
	sc := ctr.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("sensor must not be privileged and must have a read-only root: %+v", sc)
	}
	// No capabilities block at all would leave the runtime's defaults (a dozen, NET_RAW among them).
	if sc == nil || sc.Capabilities == nil {
		t.Errorf("sensor container has no capabilities set: %+v", sc)
	} else {
		added := slices.Clone(sc.Capabilities.Add)
		slices.Sort(added)
		if fmt.Sprint(added) != "[NET_ADMIN NET_RAW]" || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("capabilities: add %v drop %v, want only NET_RAW and NET_ADMIN added, ALL dropped", sc.Capabilities.Add, sc.Capabilities.Drop)
		}
	}
	// The health port is the sensor's own (other tests' sensors hold others): the one its status names.
	eventually(t, "status names the sensor's ports", func() error {
		get(t, c, cs)
		if cs.Status.HealthPort == 0 {
			return fmt.Errorf("no health port in status yet")
		}
		return nil
	})
	if p := ctr.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != int(cs.Status.HealthPort) || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe: %+v, health port %d", p, cs.Status.HealthPort)
	}
	if ctr.Resources.Limits.Memory().IsZero() {
		t.Error("sensor has no memory limit")
	}

	t.Run("kstatus follows the DaemonSet", func(t *testing.T) {
		eventually(t, "Reconciling while no sensor is ready", func() error {
			get(t, c, cs)
			if s := kstatusOf(t, cs); s != status.InProgressStatus {
				return fmt.Errorf("kstatus %s, want InProgress", s)
			}
			return nil
		})
		get(t, c, ds)
		ds.Status = appsv1.DaemonSetStatus{
			ObservedGeneration: ds.Generation, DesiredNumberScheduled: 2, CurrentNumberScheduled: 2,
			UpdatedNumberScheduled: 2, NumberReady: 2, NumberAvailable: 2,
		}
		if err := c.Status().Update(ctx, ds); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Current once every sensor is ready", func() error {
			get(t, c, cs)
			if s := kstatusOf(t, cs); s != status.CurrentStatus {
				return fmt.Errorf("kstatus %s, want Current; conditions %+v", s, cs.Status.Conditions)
			}
			if cs.Status.Nodes != "2/2" || cs.Status.ObservedGeneration != cs.Generation {
				return fmt.Errorf("status nodes %q observedGeneration %d", cs.Status.Nodes, cs.Status.ObservedGeneration)
			}
			return nil
		})
	})

	t.Run("no status write when nothing changed", func(t *testing.T) {
		// Let earlier work (topic, rollout) settle first.
		for last, i := "", 0; i < 20; i++ {
			get(t, c, cs)
			if cs.ResourceVersion == last {
				break
			}
			last = cs.ResourceVersion
			time.Sleep(time.Second)
		}
		// A metadata-only change brings a reconcile but no new generation: nothing to report.
		reconciles.After(t, "capturesensor", cs, func() {
			change(t, c, cs, func() { cs.Annotations = map[string]string{"nudge": "1"} })
		})
		rv := cs.ResourceVersion
		consistently(t, 2*time.Second, "no write after an idle reconcile", func() error {
			get(t, c, cs)
			if cs.ResourceVersion != rv {
				return fmt.Errorf("resourceVersion %s -> %s, status %+v", rv, cs.ResourceVersion, cs.Status)
			}
			return nil
		})
	})

	t.Run("a spec change reaches the DaemonSet", func(t *testing.T) {
		change(t, c, cs, func() {
			cs.Spec.Filter = "tcp port 443"
		})
		eventually(t, "new filter in the pod template", func() error {
			get(t, c, ds)
			return hasArgs(ds.Spec.Template.Spec.Containers[0], "--filter=tcp port 443")
		})
	})

	t.Run("a DaemonSet edited by hand is restored", func(t *testing.T) {
		change(t, c, ds, func() {
			ds.Spec.Template.Spec.Containers[0].Args = []string{"sensor", "--interfaces=lo"}
			ds.Spec.Template.Spec.HostNetwork = false
		}, client.FieldOwner("kubectl-edit"))
		eventually(t, "edit undone", func() error {
			get(t, c, ds)
			if !ds.Spec.Template.Spec.HostNetwork {
				return errors.New("hostNetwork still off")
			}
			return hasArgs(ds.Spec.Template.Spec.Containers[0], "--interfaces=eth0", "--filter=tcp port 443")
		})
	})

	t.Run("a deleted DaemonSet is recreated", func(t *testing.T) {
		get(t, c, ds)
		old := ds.UID
		if err := c.Delete(ctx, ds); err != nil {
			t.Fatal(err)
		}
		eventually(t, "recreated", func() error {
			if err := c.Get(ctx, key(ds), ds); err != nil {
				return err
			}
			if ds.UID == old {
				return errors.New("still the old DaemonSet")
			}
			return nil
		})
	})

	t.Run("an invalid filter stalls and leaves the DaemonSet alone", func(t *testing.T) {
		get(t, c, ds)
		rv := ds.ResourceVersion
		change(t, c, cs, func() {
			cs.Spec.Filter = "tcp port 443 and ("
			cs.Spec.SnapLength = 128
		})
		eventually(t, "Stalled with the compiler's message", func() error {
			get(t, c, cs)
			st := condition(cs, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "InvalidFilter" {
				return fmt.Errorf("Stalled condition %+v", st)
			}
			if !strings.Contains(st.Message, "syntax error") {
				return fmt.Errorf("message %q does not carry libpcap's error", st.Message)
			}
			if s := kstatusOf(t, cs); s != status.FailedStatus {
				return fmt.Errorf("kstatus %s, want Failed", s)
			}
			return nil
		})
		get(t, c, ds)
		if ds.ResourceVersion != rv {
			t.Errorf("DaemonSet changed under an invalid filter: args %v", ds.Spec.Template.Spec.Containers[0].Args)
		}
		if err := hasArgs(ds.Spec.Template.Spec.Containers[0], "--filter=tcp port 443", "--snaplen=1514"); err != nil {
			t.Error(err)
		}
		var events corev1.EventList
		eventually(t, "a warning event", func() error {
			if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range events.Items {
				if e.Reason == "InvalidFilter" && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Name == cs.Name {
					return nil
				}
			}
			return errors.New("no InvalidFilter warning event")
		})
	})

	t.Run("fixing the filter recovers", func(t *testing.T) {
		change(t, c, cs, func() {
			cs.Spec.Filter = "udp"
		})
		eventually(t, "no longer stalled, DaemonSet updated", func() error {
			get(t, c, cs)
			if st := condition(cs, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
				return fmt.Errorf("Stalled %+v", st)
			}
			get(t, c, ds)
			return hasArgs(ds.Spec.Template.Spec.Containers[0], "--filter=udp", "--snaplen=128")
		})
	})
}
