//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/cassandratest"
)

// Two FlowCollectors on the one node, in its network (as the local node runs every workload): each gets
// metrics and health ports of its own, so both run and become Ready; on one shared pair the second
// pod would wait for ports forever.
func TestTwoFlowCollectorsOnOneNode(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	sfx := strings.TrimPrefix(ns, "e2e-")
	ccfg := cassandratest.Config(t)
	mustCreate(t, c, cassandraCreds(t, ccfg, ns))
	var fcs []*v1alpha1.FlowCollector
	for i, name := range []string{"east", "west"} {
		keyspace := "e2e_" + sfx + "_" + name
		dropKeyspace(t, ccfg, keyspace)
		fcs = append(fcs, &v1alpha1.FlowCollector{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.FlowCollectorSpec{
			Port:  int32(12055 + i), // the UDP ports are the node's too
			Store: v1alpha1.FlowCollectorStore{Keyspace: keyspace, ReplicationFactor: 1},
		}})
	}
	mustCreate(t, c, fcs[0], fcs[1])
	for _, fc := range fcs {
		eventually(t, 3*time.Minute, fc.Name+" Ready and kstatus Current", func() error { return current(c, fc) })
	}
	a, b := fcs[0].Status, fcs[1].Status
	if a.MetricsPort == 0 || b.MetricsPort == 0 || a.MetricsPort == b.MetricsPort || a.HealthPort == b.HealthPort {
		t.Fatalf("collectors on node ports %d/%d and %d/%d", a.MetricsPort, a.HealthPort, b.MetricsPort, b.HealthPort)
	}
	t.Logf("collector ports: %s %d/%d, %s %d/%d", fcs[0].Name, a.MetricsPort, a.HealthPort, fcs[1].Name, b.MetricsPort, b.HealthPort)
}
