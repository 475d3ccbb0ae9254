package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/topics"
)

// Reasons of topic trouble.
const (
	ReasonTopicProblem     = "TopicMismatch"
	ReasonKafkaUnavailable = "KafkaUnavailable"
)

// topicWant turns a spec's topic into what the topic manager makes exist.
func topicWant(name string, t v1alpha1.TopicSpec) topics.Want {
	w := topics.Want{Name: name, Partitions: t.Partitions, ReplicationFactor: int16(t.ReplicationFactor)}
	if t.Retention != nil {
		w.RetentionMs = t.Retention.Milliseconds()
	}
	return w
}

// usesDefaultKafka is true when a resource's topics live on the cluster the operator administers; a
// resource pointed at another cluster brings credentials the operator never reads, so it tends no topics there.
func usesDefaultKafka(k *v1alpha1.KafkaConnection) bool {
	return k == nil || len(k.BootstrapServers) == 0
}

// tendTopics makes each wanted topic exist and reports what exists. A topic that cannot match the spec
// (partitions lowered, another replication factor) stalls the resource with the reason; Kafka being out of
// reach is an error the caller retries. Whether the operator created a topic is remembered from prev, since
// only those topics are ever deleted.
func tendTopics(ctx context.Context, m *topics.Manager, wants []topics.Want, prev []v1alpha1.TopicStatus) ([]v1alpha1.TopicStatus, *outcome, error) {
	created := map[string]bool{}
	for _, p := range prev {
		created[p.Name] = p.Created
	}
	var out []v1alpha1.TopicStatus
	var problems []string
	for _, w := range wants {
		st, err := m.Ensure(ctx, w)
		if err != nil {
			return prev, nil, err
		}
		out = append(out, v1alpha1.TopicStatus{
			Name: st.Name, Partitions: st.Partitions, ReplicationFactor: int32(st.ReplicationFactor),
			RetentionMs: st.RetentionMs, Created: st.Created || created[st.Name], Message: st.Problem,
		})
		if st.Problem != "" {
			problems = append(problems, st.Problem)
		}
	}
	if len(problems) > 0 {
		return out, &outcome{stalled: true, reason: ReasonTopicProblem, message: strings.Join(problems, "; ")}, nil
	}
	return out, nil, nil
}

// tendTopic makes want exist and keeps what exists in *st. Trouble with it is told at the end of the pass, so
// it does not hold back the workload; Kafka out of reach is retried sooner than the cache resyncs.
func tendTopic(ctx context.Context, m *topics.Manager, want topics.Want, st *[]v1alpha1.TopicStatus, p *pass) {
	tendTopicsStep(ctx, m, []topics.Want{want}, st, p)
}

// tendTopicsStep is tendTopic for several topics of one resource.
func tendTopicsStep(ctx context.Context, m *topics.Manager, wants []topics.Want, st *[]v1alpha1.TopicStatus, p *pass) {
	sts, trouble, err := tendTopics(ctx, m, wants, *st)
	if err != nil {
		trouble = &outcome{reason: ReasonKafkaUnavailable, message: err.Error()}
		p.after(kafkaRetry)
	}
	*st, p.trouble = sts, trouble
}

// The kinds that declare topics carry the topics finalizer.
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors;packetpipelines,verbs=patch;update

// finalizeTopics keeps the topics finalizer exactly when deletion must remove topics, and on deletion removes
// the topics the operator created. It returns true when the resource is being deleted.
func finalizeTopics(ctx context.Context, c client.Client, m *topics.Manager, obj client.Object, policy v1alpha1.DeletionPolicy, st []v1alpha1.TopicStatus) (bool, error) {
	if obj.GetDeletionTimestamp() != nil {
		if !controllerutil.ContainsFinalizer(obj, v1alpha1.TopicsFinalizer) {
			return true, nil
		}
		if policy == v1alpha1.DeletionPolicyDelete && m != nil {
			for _, t := range st {
				if t.Created {
					if err := m.Delete(ctx, t.Name); err != nil {
						return true, err
					}
				}
			}
		}
		return true, setFinalizer(ctx, c, obj, false)
	}
	want := policy == v1alpha1.DeletionPolicyDelete && m != nil
	if want != controllerutil.ContainsFinalizer(obj, v1alpha1.TopicsFinalizer) {
		return false, setFinalizer(ctx, c, obj, want)
	}
	return false, nil
}

// setFinalizer adds or removes the topics finalizer with a patch of the finalizers alone.
func setFinalizer(ctx context.Context, c client.Client, obj client.Object, on bool) error {
	before := obj.DeepCopyObject().(client.Object)
	if on {
		controllerutil.AddFinalizer(obj, v1alpha1.TopicsFinalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, v1alpha1.TopicsFinalizer)
	}
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update finalizers: %w", err)
	}
	return nil
}

// StatsTopicCreator makes the heartbeat topic exist when the operator starts, retrying while Kafka is out of
// reach. Heartbeats are small and only the recent ones matter, hence an hour of retention.
func StatsTopicCreator(m *topics.Manager, name string) manager.RunnableFunc {
	return func(ctx context.Context) error {
		log := ctrllog.FromContext(ctx).WithName("stats-topic")
		want := topics.Want{Name: name, Partitions: 6, ReplicationFactor: 1, RetentionMs: int64(time.Hour / time.Millisecond)}
		for {
			st, err := m.Ensure(ctx, want)
			if err == nil {
				if st.Problem != "" {
					log.Info("stats topic differs from what the operator would create; using it as it is", "problem", st.Problem)
				}
				return nil
			}
			log.Error(err, "creating the stats topic; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(kafkaRetry):
			}
		}
	}
}
