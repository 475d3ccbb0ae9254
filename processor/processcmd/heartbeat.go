package processcmd

// Heartbeats: the pipeline's counters to the operator's stats topic.
// Kept apart from the command; run only calls startHeartbeat.

import (
	"log/slog"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/processor/pipeline"
)

// heartbeatCounters maps a pipeline snapshot onto heartbeat counters:
// Packets are those decoded, RecordsOut what the sinks stored (packets and
// final flows), DecodeErrors every reason plus records that were not packet
// records at all.
func heartbeatCounters(s pipeline.Snapshot) heartbeat.Counters {
	c := heartbeat.Counters{
		Packets:      s.Decoded,
		RecordsIn:    s.RecordsIn,
		RecordsOut:   s.PacketsWritten + s.FlowsWritten,
		DecodeErrors: s.BadRecords,
		Filtered:     s.Filtered,
		SinkErrors:   s.SinkErrors,
		FlowsWritten: s.FlowsWritten,
		FlowsActive:  s.FlowsActive,
		ConsumerLag:  s.Lag,
	}
	for _, n := range s.DecodeErrors {
		c.DecodeErrors += n
	}
	return c
}

// startHeartbeat beats counters through a Kafka client of its own; the
// returned stop sends the final beat (call it once the pipeline stopped).
func startHeartbeat(hb heartbeat.Config, kc kafkaconn.Config, counters *pipeline.Counters, log *slog.Logger) (stop func(), err error) {
	kc.ClientID = "capfleet-process-heartbeat"
	snap := func() heartbeat.Counters { return heartbeatCounters(counters.Snapshot()) }
	hb.Problem = counters.Problem.String
	return workload.StartHeartbeat(hb, kc, snap, nil, log)
}
