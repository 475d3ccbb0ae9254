package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// A node's sensor beats counters that grow at a known rate; the CaptureSensor's status reports that rate
// within 5%, then, when drops are injected, their cause and a Degraded Ready condition.
func TestSensorStatusFromHeartbeats(t *testing.T) {
	c := cluster(t)
	operator.NeedFigures(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t, c)
	cs := controllerstest.RunningSensor(t, c, ns, "beating", "eth0")

	const pps = 5000
	var dropsPerSecond atomic.Int64
	start := time.Now()
	var dropped, lastTick atomic.Int64
	snap := func() heartbeat.Counters {
		elapsed := time.Since(start).Seconds()
		now := int64(elapsed * 1000)
		dropped.Add(dropsPerSecond.Load() * (now - lastTick.Swap(now)) / 1000)
		return heartbeat.Counters{
			Packets: uint64(elapsed * pps), Bytes: uint64(elapsed * pps * 800), RecordsOut: uint64(elapsed * pps),
			Drops: heartbeat.Drops{SensorQueue: uint64(dropped.Load())},
		}
	}
	pub, err := heartbeat.Dial(heartbeat.Config{
		Topic: statsTopic, Interval: time.Second, Kind: heartbeat.KindCaptureSensor,
		Namespace: ns, Name: cs.Name, UID: string(cs.UID), Pod: "beating-sensor-x", Node: "node-a",
	}, kafkatest.Plain(t), snap, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	go pub.Run(ctx)

	deadline := time.Now().Add(60 * time.Second)
	for {
		get(t, c, cs)
		got := cs.Status.PacketsPerSecond
		if got >= pps*95/100 && got <= pps*105/100 && len(cs.Status.PerNode) == 1 && time.Since(start) > 10*time.Second {
			t.Logf("status reports %d packets/s after %s (node %s)", got, time.Since(start).Round(time.Second), cs.Status.PerNode[0].Node)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status packets/s %d, want %d within 5%%; status %+v", got, pps, cs.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if cs.Status.PerNode[0].Node != "node-a" || cs.Status.PerNode[0].LastHeartbeat == nil {
		t.Errorf("per-node status %+v", cs.Status.PerNode)
	}

	dropsPerSecond.Store(250) // 5% of what is offered
	eventually(t, "drops by cause, Degraded", func() error {
		get(t, c, cs)
		ready := condition(cs, v1alpha1.ConditionReady)
		if cs.Status.Drops == nil || cs.Status.Drops.SensorQueue == 0 || cs.Status.Drops.KernelRing != 0 {
			return fmt.Errorf("drops %+v", cs.Status.Drops)
		}
		if ready == nil || ready.Reason != "Degraded" || !strings.Contains(ready.Message, "sensor queue") {
			return fmt.Errorf("Ready %+v, drop %% %s", ready, cs.Status.DropPercent)
		}
		return nil
	})
	t.Logf("drops %+v, drop %s, Ready: %s", *cs.Status.Drops, cs.Status.DropPercent, condition(cs, v1alpha1.ConditionReady).Message)
}
