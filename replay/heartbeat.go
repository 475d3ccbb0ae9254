package replay

// Heartbeats: a ReplayJob's progress to the operator's stats topic.
// Kept apart from the engine; command.go only installs heartbeatOnStart.

import (
	"log/slog"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
)

// heartbeatCounters is a replay's progress as heartbeat counters: Packets
// and Bytes were sent, Done counts sent and failed alike (both are behind us).
func heartbeatCounters(p Progress) heartbeat.Counters {
	return heartbeat.Counters{
		Packets:      p.PacketsSent,
		Bytes:        p.BytesSent,
		PacketsDone:  p.PacketsSent + p.PacketsFailed,
		BytesDone:    p.BytesSent + p.BytesFailed,
		PacketsTotal: p.PacketsTotal,
		BytesTotal:   p.BytesTotal,
		Failed:       p.PacketsFailed,
		Truncated:    p.PacketsTruncated,
	}
}

// heartbeatOnStart beats the replayer's progress from the moment it starts
// sending; the returned func, called once the run has ended, sends the final
// beat with the final counts. next (the progress bar, or nil) still runs.
func heartbeatOnStart(hb heartbeat.Config, kc kafkaconn.Config, next func(*Replayer) func()) func(*Replayer) func() {
	return func(r *Replayer) func() {
		end := func() {}
		if next != nil {
			end = next(r)
		}
		snap := func() heartbeat.Counters { return heartbeatCounters(r.Progress()) }
		stop, err := workload.StartHeartbeat(hb, kc, snap, nil, nil)
		if err != nil {
			// Validated before the run; only the Kafka secret files can fail
			// here, and the replay itself must not stop for its heartbeat.
			slog.Warn("replay: no heartbeats", "error", err)
			return end
		}
		return func() {
			end()
			stop()
		}
	}
}
