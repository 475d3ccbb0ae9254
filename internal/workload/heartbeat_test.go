package workload

import (
	"context"
	"testing"
	"time"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
)

func TestWaitStart(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	stopped, stop := context.WithCancel(context.Background())
	stop()
	if !waitStart(stopped, nil) {
		t.Error("nil start: should start at once")
	}
	if !waitStart(stopped, closed) {
		t.Error("started and stopped: the work ran, so beats are due")
	}
	if waitStart(stopped, make(chan struct{})) {
		t.Error("stopped before start: no beats")
	}
}

// Beats off (no resource name): nothing dials Kafka, and stop returns.
func TestStartHeartbeatOff(t *testing.T) {
	hb := heartbeat.DefaultConfig(heartbeat.KindPacketPipeline)
	hb.Name = ""
	stop, err := StartHeartbeat(hb, kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}}, func() heartbeat.Counters { return heartbeat.Counters{} }, make(chan struct{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop hangs")
	}
}
