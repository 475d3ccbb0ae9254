package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// Sensors run in their node's network namespace, and so do processors and flow collectors when the operator runs every
// workload there (--workload-host-network, as on a node without a pod network), so their metrics and
// health servers bind node ports: two resources asking for the same pair never share a node, and the
// scheduler leaves the second pending ("didn't have free ports"). The operator therefore gives every such
// resource in the cluster a pair of its own, records it in the status (where Prometheus and a user find
// it), and keeps it for the resource's life.
//
// A kind's first pair is the one a single resource of it always used (sensors 9090/9091, processors
// 9290/9291, collectors 9292/9293), so an upgrade moves nothing; the others come from 9400-9999, shared by both kinds, clear of
// Kafka (9092, 9093), Cassandra (9042) and the pair replays on the node's network use (9190/9191).

// processorHostPort is the first metrics port of processors in their node's network.
const processorHostPort = 9290

// portPairs are the metrics ports handed out, first the kind's own; the health port is the next one.
func portPairs(first int32) []int32 {
	pairs := []int32{first}
	for p := int32(9400); p < 10000; p += 2 {
		pairs = append(pairs, p)
	}
	return pairs
}

// sensorPortPairs are the pairs a CaptureSensor may get.
func sensorPortPairs() []int32 { return portPairs(children.MetricsPort) }

// claimant is a resource whose pods bind a pair of node ports.
type claimant struct {
	uid     types.UID
	name    string // namespace/name, to order claimants created in the same second
	created time.Time
	port    int32 // metrics port in its status, 0 before it got one
}

func claimantOf(o client.Object, port int32) claimant {
	return claimant{uid: o.GetUID(), name: o.GetNamespace() + "/" + o.GetName(), created: o.GetCreationTimestamp().Time, port: port}
}

// olderThan is whether c was created before o (by name when in the same second): the older keeps a
// contested port.
func (c claimant) olderThan(o claimant) bool {
	return c.created.Before(o.created) || (c.created.Equal(o.created) && c.name < o.name)
}

// portBook remembers the ports this operator handed out, since a resource's status (the lasting record)
// may reach the cache only after the next resource's reconcile reads it. One book serves every kind, so a
// sensor and a processor on one node never get the same pair.
type portBook struct {
	mu   sync.Mutex
	held map[types.UID]int32
}

// sensorPorts chooses the metrics port of cs (health is the next port) and records both in its status.
func (b *portBook) sensorPorts(ctx context.Context, c client.Reader, cs *v1alpha1.CaptureSensor) error {
	return b.assign(ctx, c, cs, &cs.Status.MetricsPort, &cs.Status.HealthPort, children.MetricsPort)
}

// pipelinePorts does the same for the processors of pp, which bind node ports only on the node's network.
func (b *portBook) pipelinePorts(ctx context.Context, c client.Reader, pp *v1alpha1.PacketPipeline) error {
	return b.assign(ctx, c, pp, &pp.Status.MetricsPort, &pp.Status.HealthPort, processorHostPort)
}

// collectorPorts does the same for the collectors of fc, which bind node ports only on the node's network.
func (b *portBook) collectorPorts(ctx context.Context, c client.Reader, fc *v1alpha1.FlowCollector) error {
	return b.assign(ctx, c, fc, &fc.Status.MetricsPort, &fc.Status.HealthPort, children.CollectorHostPort)
}

// assign chooses o's metrics port, its kind's pairs starting with first, and writes the pair into the
// status fields metrics and health.
func (b *portBook) assign(ctx context.Context, c client.Reader, o client.Object, metrics, health *int32, first int32) error {
	p, err := b.choose(ctx, c, claimantOf(o, *metrics), first)
	if err != nil {
		return err
	}
	*metrics, *health = p, p+1
	return nil
}

// choose gives self a metrics port: the one it has unless an older resource holds the same one (a
// restored status, say), else the first free pair starting with first.
func (b *portBook) choose(ctx context.Context, c client.Reader, self claimant, first int32) (int32, error) {
	others, err := claimants(ctx, c)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == nil {
		b.held = map[types.UID]int32{}
	}
	live := map[types.UID]bool{}
	claims := map[int32][]claimant{}
	for _, o := range others {
		live[o.uid] = true
		if o.uid == self.uid {
			continue
		}
		if held, ok := b.held[o.uid]; ok {
			o.port = held
		}
		if o.port != 0 {
			claims[o.port] = append(claims[o.port], o)
		}
	}
	for uid := range b.held {
		if !live[uid] && uid != self.uid {
			delete(b.held, uid)
		}
	}
	mine := self.port
	if held, ok := b.held[self.uid]; ok {
		mine = held
	}
	if mine == 0 || olderClaim(claims[mine], self) {
		mine = 0
		for _, p := range portPairs(first) {
			if len(claims[p]) == 0 {
				mine = p
				break
			}
		}
		if mine == 0 {
			return 0, fmt.Errorf("no free pair of node ports left: %d resources hold one", len(others))
		}
	}
	b.held[self.uid] = mine
	return mine, nil
}

// claimants lists every CaptureSensor, PacketPipeline and FlowCollector with the port in its status.
func claimants(ctx context.Context, c client.Reader) ([]claimant, error) {
	var sensors v1alpha1.CaptureSensorList
	if err := c.List(ctx, &sensors); err != nil {
		return nil, err
	}
	var pipelines v1alpha1.PacketPipelineList
	if err := c.List(ctx, &pipelines); err != nil {
		return nil, err
	}
	var collectors v1alpha1.FlowCollectorList
	if err := c.List(ctx, &collectors); err != nil {
		return nil, err
	}
	out := make([]claimant, 0, len(sensors.Items)+len(pipelines.Items)+len(collectors.Items))
	for i := range sensors.Items {
		out = append(out, claimantOf(&sensors.Items[i], sensors.Items[i].Status.MetricsPort))
	}
	for i := range pipelines.Items {
		out = append(out, claimantOf(&pipelines.Items[i], pipelines.Items[i].Status.MetricsPort))
	}
	for i := range collectors.Items {
		out = append(out, claimantOf(&collectors.Items[i], collectors.Items[i].Status.MetricsPort))
	}
	return out, nil
}

// olderClaim is true when one of others is older than self.
func olderClaim(others []claimant, self claimant) bool {
	for _, o := range others {
		if o.olderThan(self) {
			return true
		}
	}
	return false
}
