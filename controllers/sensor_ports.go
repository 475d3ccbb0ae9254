package controllers

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// Sensors run in their node's network namespace, so their metrics and health servers bind node ports, and
// two CaptureSensors asking for the same pair never share a node: the scheduler leaves the second pending
// ("didn't have free ports"). The operator therefore gives every CaptureSensor in the cluster a pair of its
// own, records it in the status (where Prometheus and a user find it), and keeps it for the sensor's life.
//
// The first pair is the one a single sensor always used (9090/9091), so an upgrade moves nothing; the others
// come from 9400-9999, clear of Kafka (9092, 9093), Cassandra (9042) and the pairs that replays and
// processors on the node's network use (9190/9191, 9290/9291).

// sensorPortPairs are the metrics ports handed out, in order; the health port is the next one.
func sensorPortPairs() []int32 {
	pairs := []int32{children.MetricsPort}
	for p := int32(9400); p < 10000; p += 2 {
		pairs = append(pairs, p)
	}
	return pairs
}

// portBook remembers the ports this operator handed out, since a sensor's status (the lasting record) may
// reach the cache only after the next sensor's reconcile reads it.
type portBook struct {
	mu   sync.Mutex
	held map[types.UID]int32
}

// sensorPorts chooses the metrics port of cs (health is the next port) and records both in its status. A sensor
// keeps its port unless an older sensor holds the same one (a restored status, say); then it moves to a free one.
func (b *portBook) sensorPorts(ctx context.Context, c client.Reader, cs *v1alpha1.CaptureSensor) error {
	var all v1alpha1.CaptureSensorList
	if err := c.List(ctx, &all); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == nil {
		b.held = map[types.UID]int32{}
	}
	live := map[types.UID]bool{}
	claims := map[int32][]*v1alpha1.CaptureSensor{}
	for i := range all.Items {
		o := &all.Items[i]
		live[o.UID] = true
		if o.UID == cs.UID {
			continue
		}
		port := o.Status.MetricsPort
		if held, ok := b.held[o.UID]; ok {
			port = held
		}
		if port != 0 {
			claims[port] = append(claims[port], o)
		}
	}
	for uid := range b.held {
		if !live[uid] && uid != cs.UID {
			delete(b.held, uid)
		}
	}

	mine := cs.Status.MetricsPort
	if held, ok := b.held[cs.UID]; ok {
		mine = held
	}
	if mine == 0 || olderClaim(claims[mine], cs) {
		mine = 0
		for _, p := range sensorPortPairs() {
			if len(claims[p]) == 0 {
				mine = p
				break
			}
		}
		if mine == 0 {
			return fmt.Errorf("no free pair of sensor ports left: %d CaptureSensors in the cluster", len(all.Items))
		}
	}
	b.held[cs.UID] = mine
	cs.Status.MetricsPort, cs.Status.HealthPort = mine, mine+1
	return nil
}

// olderClaim is true when one of others was created before cs (by name when at the same second): the older
// sensor keeps a contested port.
func olderClaim(others []*v1alpha1.CaptureSensor, cs *v1alpha1.CaptureSensor) bool {
	for _, o := range others {
		ot, ct := o.CreationTimestamp.Time, cs.CreationTimestamp.Time
		if ot.Before(ct) || (ot.Equal(ct) && o.Namespace+"/"+o.Name < cs.Namespace+"/"+cs.Name) {
			return true
		}
	}
	return false
}
