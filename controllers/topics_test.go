package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
)

// brokerView reads a topic straight from the broker, not through the operator.
type brokerView struct{ adm *kadm.Client }

// operatorBroker is a view of the broker the operator under test tends topics on, closed when the test
// and its cleanups end; a test needing it without one is skipped, or fails under CI.
func operatorBroker(t *testing.T) brokerView {
	kc := kafkatest.Plain(t)
	if topicsMgr == nil {
		testenv.Missing(t, "the operator under test has no Kafka: start it with hack/kafka.sh start")
	}
	cl, err := kc.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return brokerView{kadm.NewClient(cl)}
}

func (b brokerView) topic(ctx context.Context, name string) (partitions int, retentionMs int64, exists bool, err error) {
	details, err := b.adm.ListTopics(ctx, name)
	if err != nil {
		return 0, 0, false, err
	}
	d, ok := details[name]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return 0, 0, false, nil
	}
	rcs, err := b.adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return 0, 0, false, err
	}
	rc, err := rcs.On(name, nil)
	if err != nil {
		return 0, 0, false, err
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			retentionMs, _ = strconv.ParseInt(*c.Value, 10, 64)
		}
	}
	return len(d.Partitions), retentionMs, true, nil
}

func (b brokerView) expect(t *testing.T, name string, partitions int, retentionMs int64) {
	t.Helper()
	eventually(t, "topic "+name, func() error { return b.is(name, partitions, retentionMs) })
}

// is says how the topic differs from what is wanted, or nil.
func (b brokerView) is(name string, partitions int, retentionMs int64) error {
	p, r, ok, err := b.topic(context.Background(), name)
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("does not exist")
	case p != partitions || r != retentionMs:
		return fmt.Errorf("%d partitions, retention.ms %d; want %d, %d", p, r, partitions, retentionMs)
	}
	return nil
}

func (b brokerView) expectGone(t *testing.T, name string, gone bool) {
	t.Helper()
	eventually(t, "topic "+name+" presence", func() error {
		_, _, ok, err := b.topic(context.Background(), name)
		if err != nil {
			return err
		}
		if ok == gone {
			return fmt.Errorf("exists=%v", ok)
		}
		return nil
	})
}

func sensorWithTopic(ns, name string, partitions int32, retention time.Duration, policy v1alpha1.DeletionPolicy) *v1alpha1.CaptureSensor {
	return &v1alpha1.CaptureSensor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CaptureSensorSpec{
			Interfaces:          []string{"eth0"},
			Topic:               v1alpha1.TopicSpec{Partitions: partitions, ReplicationFactor: 1, Retention: &metav1.Duration{Duration: retention}},
			TopicDeletionPolicy: policy,
		},
	}
}

// The operator tends a sensor's topic on the real broker: creates it, raises partitions, alters retention,
// refuses to lower partitions, deletes only what it created and only when asked, adopts only compatible topics.
func TestTopicLifecycle(t *testing.T) {
	c := cluster(t)
	broker := operatorBroker(t)
	ctx := context.Background()
	ns := namespace(t, c)

	cs := sensorWithTopic(ns, "lifecycle", 3, time.Hour, v1alpha1.DeletionPolicyDelete)
	if err := c.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	name := ns + ".lifecycle.packets"
	broker.expect(t, name, 3, 3600000)
	eventually(t, "status and finalizer", func() error {
		get(t, c, cs)
		if len(cs.Status.Topics) != 1 || !cs.Status.Topics[0].Created || cs.Status.Topics[0].Partitions != 3 {
			return fmt.Errorf("status.topics %+v", cs.Status.Topics)
		}
		if len(cs.Finalizers) != 1 || cs.Finalizers[0] != v1alpha1.TopicsFinalizer {
			return fmt.Errorf("finalizers %v", cs.Finalizers)
		}
		return nil
	})

	t.Run("raise partitions and alter retention", func(t *testing.T) {
		change(t, c, cs, func() {
			cs.Spec.Topic.Partitions = 5
			cs.Spec.Topic.Retention = &metav1.Duration{Duration: 2 * time.Hour}
		})
		broker.expect(t, name, 5, 7200000)
	})

	t.Run("refuse to lower partitions", func(t *testing.T) {
		change(t, c, cs, func() { cs.Spec.Topic.Partitions = 2 })
		eventually(t, "Stalled with the reason", func() error {
			get(t, c, cs)
			st := condition(cs, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || !strings.Contains(st.Message, "cannot lower partitions") {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
		broker.expect(t, name, 5, 7200000)
		change(t, c, cs, func() { cs.Spec.Topic.Partitions = 5 })
		eventually(t, "no longer stalled", func() error {
			get(t, c, cs)
			if st := condition(cs, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionFalse {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
	})

	t.Run("a reconcile from scratch changes nothing", func(t *testing.T) {
		get(t, c, cs)
		before := cs.Status.Topics[0]
		reconciles.After(t, "capturesensor", cs, func() {
			change(t, c, cs, func() { cs.Annotations = map[string]string{"nudge": "1"} })
		})
		consistently(t, 2*time.Second, "topic and its status after an idle reconcile", func() error {
			if err := broker.is(name, 5, 7200000); err != nil {
				return err
			}
			get(t, c, cs)
			if cs.Status.Topics[0] != before {
				return fmt.Errorf("topic status changed: %+v -> %+v", before, cs.Status.Topics[0])
			}
			return nil
		})
	})

	t.Run("Delete removes the topic it created", func(t *testing.T) {
		if err := c.Delete(ctx, cs); err != nil {
			t.Fatal(err)
		}
		broker.expectGone(t, name, true)
		eventually(t, "sensor gone", func() error {
			if err := c.Get(ctx, key(cs), cs); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		})
	})

	t.Run("Retain keeps the topic", func(t *testing.T) {
		kept := sensorWithTopic(ns, "kept", 2, time.Hour, v1alpha1.DeletionPolicyRetain)
		if err := c.Create(ctx, kept); err != nil {
			t.Fatal(err)
		}
		broker.expect(t, ns+".kept.packets", 2, 3600000)
		if err := c.Delete(ctx, kept); err != nil {
			t.Fatal(err)
		}
		eventually(t, "sensor gone", func() error {
			if err := c.Get(ctx, key(kept), kept); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		})
		broker.expectGone(t, ns+".kept.packets", false)
	})

	t.Run("an existing topic is adopted when compatible and never deleted", func(t *testing.T) {
		foreign := ns + ".foreign"
		if _, err := broker.adm.CreateTopic(ctx, 2, 1, nil, foreign); err != nil {
			t.Fatal(err)
		}
		adopt := sensorWithTopic(ns, "adopt", 4, time.Hour, v1alpha1.DeletionPolicyDelete)
		adopt.Spec.Topic.Name = foreign
		if err := c.Create(ctx, adopt); err != nil {
			t.Fatal(err)
		}
		broker.expect(t, foreign, 4, 3600000)
		get(t, c, adopt)
		if adopt.Status.Topics[0].Created {
			t.Error("an adopted topic is marked as created by the operator")
		}
		if err := c.Delete(ctx, adopt); err != nil {
			t.Fatal(err)
		}
		eventually(t, "sensor gone", func() error {
			if err := c.Get(ctx, key(adopt), adopt); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		})
		broker.expectGone(t, foreign, false)
	})

	t.Run("an incompatible existing topic is reported and left alone", func(t *testing.T) {
		other := ns + ".other"
		if _, err := broker.adm.CreateTopic(ctx, 1, 1, nil, other); err != nil {
			t.Fatal(err)
		}
		bad := sensorWithTopic(ns, "incompatible", 6, time.Hour, v1alpha1.DeletionPolicyRetain)
		bad.Spec.Topic.Name = other
		bad.Spec.Topic.ReplicationFactor = 3
		if err := c.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Stalled, incompatible", func() error {
			get(t, c, bad)
			st := condition(bad, v1alpha1.ConditionStalled)
			if st == nil || st.Status != metav1.ConditionTrue || !strings.Contains(st.Message, "replication factor 1, spec asks 3") {
				return fmt.Errorf("Stalled %+v", st)
			}
			return nil
		})
		p, _, _, err := broker.topic(ctx, other)
		if err != nil || p != 1 {
			t.Errorf("incompatible topic touched: %d partitions, %v", p, err)
		}
		_ = c.Delete(ctx, bad, client.PropagationPolicy(metav1.DeletePropagationBackground))
	})
}
