package workload

import (
	"context"
	"log/slog"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
)

// StartHeartbeat beats snap to the stats topic through a Kafka client of its
// own, so that a full data buffer cannot hold beats back. Beats begin once
// start is closed (nil: at once): a first beat is what an observer may wait
// on, so it must not come before the work does. The returned stop sends the
// final beat and waits for it; call it once the work has ended, so that beat
// holds the final counts. A workload stopped before start sends none.
func StartHeartbeat(hb heartbeat.Config, kc kafkaconn.Config, snap func() heartbeat.Counters, start <-chan struct{}, log *slog.Logger) (stop func(), err error) {
	p, err := heartbeat.Dial(hb, kc, snap, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if waitStart(ctx, start) {
			p.Run(ctx)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// waitStart is whether start came before ctx ended. A start already closed
// wins over a stop already asked for: that work ran, and its final beat is due.
func waitStart(ctx context.Context, start <-chan struct{}) bool {
	if start == nil {
		return true
	}
	select {
	case <-start:
		return true
	default:
	}
	select {
	case <-start:
		return true
	case <-ctx.Done():
		return false
	}
}

// ReportFailure tells the stats topic, in one final beat, why the workload ends with err: a pod that
// fails before its work starts (an interface that does not exist, a topic that is missing) sends no beat
// otherwise, and the operator should read the cause from the workload as well as from the pod. It
// returns err, for the command to return; a beat that cannot be sent is only logged.
func ReportFailure(hb heartbeat.Config, kc kafkaconn.Config, err error, log *slog.Logger) error {
	if err == nil || !hb.Enabled() {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	hb.Problem = func() string { return err.Error() }
	p, derr := heartbeat.Dial(hb, kc, func() heartbeat.Counters { return heartbeat.Counters{} }, log)
	if derr != nil {
		log.Warn("the failure could not be reported in a heartbeat", "error", derr)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run sends its final beat at once and waits for it
	p.Run(ctx)
	return err
}
