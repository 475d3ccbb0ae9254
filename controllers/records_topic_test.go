package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// A pipeline with both Kafka sinks gets both topics on the real broker, each as its spec says, both in
// its status, the records topic in the processors' arguments, and with Delete both go with it.
func TestPipelineTendsFlowsAndPacketRecordsTopics(t *testing.T) {
	c := cluster(t)
	broker := operatorBroker(t)
	ctx := context.Background()
	ns := namespace(t, c)
	pp := &v1alpha1.PacketPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "parsed"},
		Spec: v1alpha1.PacketPipelineSpec{
			Source: v1alpha1.PipelineSource{Topic: "mirror.packets"},
			Sinks: v1alpha1.PipelineSinks{
				Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: "k", ReplicationFactor: 1},
				Kafka:     &v1alpha1.KafkaFlowSink{Topic: v1alpha1.TopicSpec{Partitions: 1, ReplicationFactor: 1}},
				PacketRecords: &v1alpha1.PacketRecordsSink{Topic: v1alpha1.TopicSpec{Partitions: 2, ReplicationFactor: 1,
					Retention: &metav1.Duration{Duration: time.Hour}}},
			},
			TopicDeletionPolicy: v1alpha1.DeletionPolicyDelete,
		},
	}
	if err := c.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	flows, records := ns+".parsed.flows", ns+".parsed.records"
	broker.expectGone(t, flows, false)
	broker.expect(t, records, 2, 3600000)
	eventually(t, "both topics in the status", func() error {
		get(t, c, pp)
		names := map[string]bool{}
		for _, s := range pp.Status.Topics {
			names[s.Name] = s.Created
		}
		if len(pp.Status.Topics) != 2 || !names[flows] || !names[records] {
			return fmt.Errorf("status.topics %+v", pp.Status.Topics)
		}
		return nil
	})
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "parsed-processor"}}
	eventually(t, "processors told of the records topic", func() error {
		if err := c.Get(ctx, key(dep), dep); err != nil {
			return err
		}
		return hasArgs(dep.Spec.Template.Spec.Containers[0], "--records-topic="+records, "--flows-topic="+flows)
	})
	if err := c.Delete(ctx, pp); err != nil {
		t.Fatal(err)
	}
	broker.expectGone(t, flows, true)
	broker.expectGone(t, records, true)
}
