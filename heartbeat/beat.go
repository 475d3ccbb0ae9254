// Package heartbeat carries every workload's counters to the operator: pods
// publish a Beat every few seconds to one stats topic (Publisher), and the
// operator folds them into per-resource rates, drops and progress
// (Aggregator) that it writes to each resource's status.
//
// Beats carry monotonic counters, never rates: a lost or late beat costs
// resolution, not correctness, and the reader derives rates from deltas.
package heartbeat

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the "v" of every Beat this package writes; Decode refuses others
// so a future format change is noticed instead of misread.
const Version = 1

// The kinds of resource a workload serves.
const (
	KindCaptureSensor  = "CaptureSensor"
	KindReplayJob      = "ReplayJob"
	KindPacketPipeline = "PacketPipeline"
	KindFlowCollector  = "FlowCollector"
)

// Beat is one heartbeat record on the stats topic (JSON).
type Beat struct {
	V         int    `json:"v"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	Pod       string `json:"pod"`
	Node      string `json:"node,omitempty"`
	// Time is when the beat was taken, by the pod's clock; rates are computed
	// from deltas of this clock, so skew against the operator does not matter.
	Time time.Time `json:"time"`
	// Seq counts beats from 1 within one process (StartedAt).
	Seq uint64 `json:"seq"`
	// StartedAt is the process start: a new value means the counters restarted.
	StartedAt time.Time `json:"started_at"`
	// IntervalMS is the publisher's period, so a reader can tell a late beat
	// from a pod that stopped without being told each pod's flags.
	IntervalMS int64 `json:"interval_ms,omitempty"`
	// Final marks the beat sent at shutdown: no more will follow from this process.
	Final    bool     `json:"final,omitempty"`
	Counters Counters `json:"counters"`
	// Problem is what keeps the workload from its job right now, in its own words (the sink error a
	// processor keeps retrying, with since when); empty while it makes progress. A workload retries
	// such errors instead of exiting, so without it the status would show only counters that stopped.
	Problem string `json:"problem,omitempty"`
}

// Counters are a workload's counts since its process started. All are
// monotonic except the gauges FlowsActive, ConsumerLag and the replay totals
// (PacketsTotal, BytesTotal), which are read as they are.
//
// What each workload puts in them:
//   - sensor: Packets/Bytes captured (after the kernel filter), Drops by cause,
//     RecordsOut = packets Kafka acknowledged.
//   - replay: Packets/Bytes sent, PacketsDone/BytesDone = sent + failed,
//     Failed and Truncated packets, totals of the run (0 when it loops forever).
//   - processor: RecordsIn consumed, Packets decoded, DecodeErrors, Filtered,
//     SinkErrors, FlowsActive, FlowsWritten, RecordsOut = packets + flows
//     stored, ConsumerLag.
//   - NetFlow/IPFIX collector: RecordsIn = flow records decoded, RecordsOut =
//     FlowsWritten = flows stored, DecodeErrors = template errors and
//     malformed packets, SequenceGaps, Drops.SensorQueue = flows dropped while
//     Cassandra was behind, SinkErrors, Exporters.
type Counters struct {
	Packets      uint64 `json:"packets,omitempty"`
	Bytes        uint64 `json:"bytes,omitempty"`
	Drops        Drops  `json:"drops,omitzero"`
	DecodeErrors uint64 `json:"decode_errors,omitempty"`
	Filtered     uint64 `json:"filtered,omitempty"`
	SinkErrors   uint64 `json:"sink_errors,omitempty"`
	FlowsWritten uint64 `json:"flows_written,omitempty"`
	RecordsIn    uint64 `json:"records_in,omitempty"`
	RecordsOut   uint64 `json:"records_out,omitempty"`
	PacketsDone  uint64 `json:"packets_done,omitempty"`
	BytesDone    uint64 `json:"bytes_done,omitempty"`
	Failed       uint64 `json:"failed,omitempty"`
	Truncated    uint64 `json:"truncated,omitempty"`
	// SequenceGaps are the units NetFlow/IPFIX exporters' sequence numbers say were lost on the way.
	SequenceGaps uint64 `json:"sequence_gaps,omitempty"`

	// Gauges.
	FlowsActive  int64  `json:"flows_active,omitempty"`
	ConsumerLag  int64  `json:"consumer_lag,omitempty"`
	PacketsTotal uint64 `json:"packets_total,omitempty"`
	BytesTotal   uint64 `json:"bytes_total,omitempty"`
	// Exporters is the NetFlow/IPFIX exporters a collector pod has heard from.
	Exporters int64 `json:"exporters,omitempty"`
}

// Drops are packets lost, by where they were lost.
type Drops struct {
	KernelRing   uint64 `json:"kernel_ring,omitempty"`   // the capture ring was full
	Interface    uint64 `json:"interface,omitempty"`     // the NIC/driver dropped them (rx_dropped)
	SensorQueue  uint64 `json:"sensor_queue,omitempty"`  // the producer buffer was full
	KafkaProduce uint64 `json:"kafka_produce,omitempty"` // Kafka refused them or they timed out
}

// Total is the sum over causes.
func (d Drops) Total() uint64 {
	return d.KernelRing + d.Interface + d.SensorQueue + d.KafkaProduce
}

// Offered is what reached the node: packets counted plus those lost before
// they could be counted (ring and interface drops). Queue and produce drops
// are already among Packets.
func (c Counters) Offered() uint64 {
	return c.Packets + c.Drops.KernelRing + c.Drops.Interface
}

// counterFields lists the monotonic fields, so restarts, deltas and sums
// treat every counter alike and a new field cannot be forgotten in one of them.
func (c *Counters) counterFields() [17]*uint64 {
	return [...]*uint64{
		&c.Packets, &c.Bytes,
		&c.Drops.KernelRing, &c.Drops.Interface, &c.Drops.SensorQueue, &c.Drops.KafkaProduce,
		&c.DecodeErrors, &c.Filtered, &c.SinkErrors, &c.FlowsWritten,
		&c.RecordsIn, &c.RecordsOut, &c.PacketsDone, &c.BytesDone, &c.Failed, &c.Truncated, &c.SequenceGaps,
	}
}

// addCounters adds o's monotonic fields to c's; gauges are left alone.
func (c *Counters) addCounters(o Counters) {
	cf, of := c.counterFields(), o.counterFields()
	for i := range cf {
		*cf[i] += *of[i]
	}
}

// Key is the record key of b: kind/namespace/name/pod, so each pod's beats
// stay in order on one partition.
func (b *Beat) Key() string {
	return b.Kind + "/" + b.Namespace + "/" + b.Name + "/" + b.Pod
}

// Encode is the record value of b.
func Encode(b Beat) ([]byte, error) {
	b.V = Version
	return json.Marshal(b)
}

// ErrVersion is returned for a beat written in a format this code does not read.
var ErrVersion = errors.New("heartbeat: unsupported version")

// Decode parses and checks a record value.
func Decode(value []byte) (Beat, error) {
	var b Beat
	if err := json.Unmarshal(value, &b); err != nil {
		return Beat{}, fmt.Errorf("heartbeat: %w", err)
	}
	if b.V != Version {
		return Beat{}, fmt.Errorf("%w %d (this build reads %d)", ErrVersion, b.V, Version)
	}
	if err := b.check(); err != nil {
		return Beat{}, err
	}
	return b, nil
}

func (b *Beat) check() error {
	switch b.Kind {
	case KindCaptureSensor, KindReplayJob, KindPacketPipeline, KindFlowCollector:
	default:
		return fmt.Errorf("heartbeat: unknown kind %q", b.Kind)
	}
	switch {
	case b.Namespace == "" || b.Name == "":
		return fmt.Errorf("heartbeat: %s without namespace or name", b.Kind)
	case b.Pod == "":
		return fmt.Errorf("heartbeat: %s %s/%s without pod", b.Kind, b.Namespace, b.Name)
	case b.Time.IsZero() || b.StartedAt.IsZero():
		return fmt.Errorf("heartbeat: %s from pod %s without time or started_at", b.Key(), b.Pod)
	}
	return nil
}
