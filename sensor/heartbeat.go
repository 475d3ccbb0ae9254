package sensor

// Heartbeats: the sensor's counters to the operator's stats topic.
// Kept apart from the capture code; command.go only calls startHeartbeat.

import (
	"log/slog"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/workload"
)

// heartbeatCounters is the sensor's view of the heartbeat counters: Packets
// are what left the kernel filter, RecordsOut what Kafka acknowledged, and
// packets skipped on purpose by --sample-rate count as Filtered, not drops.
func heartbeatCounters(c Counters) heartbeat.Counters {
	return heartbeat.Counters{
		Packets:    c.PacketsCaptured,
		Bytes:      c.BytesCaptured,
		RecordsOut: c.PacketsPublished,
		Filtered:   c.PacketsSampledOut,
		Drops: heartbeat.Drops{
			KernelRing:   c.KernelDrops,
			Interface:    c.InterfaceDrops,
			SensorQueue:  c.BufferDrops,
			KafkaProduce: c.ProduceFailures,
		},
	}
}

// startHeartbeat beats s's counters from the moment capture starts. The
// returned stop sends the final beat: call it after s.Run returned, so that
// beat holds the flushed counters. A sensor that never started sends none.
func startHeartbeat(hb heartbeat.Config, cfg Config, s *Sensor, log *slog.Logger) (stop func(), err error) {
	hb.Node = cfg.Node // the same name as in every packet record
	snap := func() heartbeat.Counters { return heartbeatCounters(s.Counters()) }
	return workload.StartHeartbeat(hb, cfg.Kafka, snap, s.Started(), log)
}
