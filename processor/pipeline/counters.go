package pipeline

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"capfleet.dev/capfleet/processor/decode"
)

// Counters are the pipeline's monotonic counts and gauges. They are the one source for /metrics and for
// the heartbeat a processor publishes (Snapshot).
type Counters struct {
	RecordsIn      atomic.Uint64
	BadRecords     atomic.Uint64 // Kafka records that are not packet records (missing headers...)
	Decoded        atomic.Uint64
	DecodeErrors   [decode.NumReasons]atomic.Uint64 // index 0 (ok) stays 0
	Filtered       atomic.Uint64
	PacketsWritten atomic.Uint64
	BlocksWritten  atomic.Uint64 // packet blocks stored (each holds many packets)
	BlockBytes     atomic.Uint64 // compressed bytes of the blocks stored
	FlowsWritten   atomic.Uint64 // final (closed) flow records stored
	FlowUpdates    atomic.Uint64 // running totals of open flows stored at checkpoints
	FlowsEvicted   atomic.Uint64 // flows closed early because the table was full
	FlowsFiltered  atomic.Uint64 // flow records (closed or running totals) the flow filter kept from the sinks
	FlowsPublished atomic.Uint64
	// PacketRecordsPublished counts the decoded packet records produced to the records topic.
	PacketRecordsPublished atomic.Uint64
	// TrafficRowsWritten and EdgeRowsWritten count the rows of traffic counters and edge rollups stored
	// (a window's row is rewritten while it is open).
	TrafficRowsWritten atomic.Uint64
	EdgeRowsWritten    atomic.Uint64
	CassandraErrors    atomic.Uint64
	KafkaErrors        atomic.Uint64
	FlowsExported      atomic.Uint64 // IPFIX data records sent (one per direction that carried packets)
	IPFIXErrors        atomic.Uint64 // flows or IPFIX messages that could not be exported
	Retries            atomic.Uint64
	Commits            atomic.Uint64
	FlowsActive        atomic.Int64
	// Uncommitted counts records consumed but not yet committed; Lag is the group's distance from the
	// high watermark of its partitions (records not yet committed, consumed or not).
	Uncommitted atomic.Int64
	Lag         atomic.Int64
	// Problem is the failure being retried, if any, for the heartbeat.
	Problem Problem
}

// Snapshot is a plain copy of Counters, for a heartbeat.
type Snapshot struct {
	RecordsIn      uint64            `json:"recordsIn"`
	BadRecords     uint64            `json:"badRecords"`
	Decoded        uint64            `json:"decoded"`
	DecodeErrors   map[string]uint64 `json:"decodeErrors"`
	Filtered       uint64            `json:"filtered"`
	PacketsWritten uint64            `json:"packetsWritten"`
	BlocksWritten  uint64            `json:"blocksWritten"`
	BlockBytes     uint64            `json:"blockBytes"`
	FlowsWritten   uint64            `json:"flowsWritten"`
	FlowUpdates    uint64            `json:"flowUpdates"`
	FlowsEvicted   uint64            `json:"flowsEvicted"`
	FlowsFiltered  uint64            `json:"flowsFiltered"`
	FlowsPublished uint64            `json:"flowsPublished"`
	SinkErrors     uint64            `json:"sinkErrors"`
	Retries        uint64            `json:"retries"`
	Commits        uint64            `json:"commits"`
	FlowsActive    int64             `json:"flowsActive"`
	Uncommitted    int64             `json:"uncommitted"`
	Lag            int64             `json:"lag"`
}

// Snapshot reads every counter once; counters move independently, so the copy is not one instant.
func (c *Counters) Snapshot() Snapshot {
	s := Snapshot{
		RecordsIn:      c.RecordsIn.Load(),
		BadRecords:     c.BadRecords.Load(),
		Decoded:        c.Decoded.Load(),
		DecodeErrors:   map[string]uint64{},
		Filtered:       c.Filtered.Load(),
		PacketsWritten: c.PacketsWritten.Load(),
		BlocksWritten:  c.BlocksWritten.Load(),
		BlockBytes:     c.BlockBytes.Load(),
		FlowsWritten:   c.FlowsWritten.Load(),
		FlowUpdates:    c.FlowUpdates.Load(),
		FlowsEvicted:   c.FlowsEvicted.Load(),
		FlowsFiltered:  c.FlowsFiltered.Load(),
		FlowsPublished: c.FlowsPublished.Load(),
		SinkErrors:     c.CassandraErrors.Load() + c.KafkaErrors.Load() + c.IPFIXErrors.Load(),
		Retries:        c.Retries.Load(),
		Commits:        c.Commits.Load(),
		FlowsActive:    c.FlowsActive.Load(),
		Uncommitted:    c.Uncommitted.Load(),
		Lag:            c.Lag.Load(),
	}
	for r := decode.Reason(1); r < decode.NumReasons; r++ {
		s.DecodeErrors[r.String()] = c.DecodeErrors[r].Load()
	}
	return s
}

// collector exposes Counters to Prometheus, reading the atomics at scrape time.
type collector struct {
	c     *Counters
	descs map[string]*prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("capfleet_process_"+name, help, labels, nil)
}

// NewCollector returns a prometheus.Collector over c.
func NewCollector(c *Counters) prometheus.Collector {
	return &collector{c: c, descs: map[string]*prometheus.Desc{
		"records":        desc("records_total", "Kafka records consumed."),
		"bad_records":    desc("bad_records_total", "Kafka records that are not packet records."),
		"decoded":        desc("decoded_total", "Packets decoded down to their transport header (or an IP protocol not parsed further)."),
		"decode_errors":  desc("decode_errors_total", "Packets not fully decoded, by reason.", "reason"),
		"filtered":       desc("filtered_total", "Packets the BPF or display filter dropped."),
		"packets":        desc("packets_written_total", "Packets stored in Cassandra."),
		"blocks":         desc("blocks_written_total", "Compressed packet blocks stored in Cassandra."),
		"block_bytes":    desc("block_bytes_written_total", "Compressed bytes of the packet blocks stored."),
		"flows":          desc("flows_written_total", "Closed flow records stored in Cassandra."),
		"flow_updates":   desc("flow_updates_total", "Running totals of open flows stored at checkpoints."),
		"evicted":        desc("flows_evicted_total", "Flows closed early because the flow table was full."),
		"flows_filtered": desc("flows_filtered_total", "Flow records (closed flows or open flows' running totals) the flow filter kept from the sinks."),
		"published":      desc("flows_published_total", "Flow records produced to the flows topic."),
		"packet_records": desc("packet_records_published_total", "Decoded packet records (JSON, tshark field names) produced to the records topic."),
		"traffic_rows":   desc("traffic_rows_written_total", "Rows of per-window traffic counters stored (an open window's row is rewritten)."),
		"edge_rows":      desc("edge_rollup_rows_written_total", "Rows of per-window edge rollups stored."),
		"exported":       desc("ipfix_records_exported_total", "IPFIX data records exported (one per direction of a flow that carried packets)."),
		"sink_errors":    desc("sink_errors_total", "Failed write attempts, by sink.", "sink"),
		"retries":        desc("retries_total", "Write attempts retried after a failure."),
		"commits":        desc("commits_total", "Offset commits."),
		"flows_active":   desc("flows_active", "Open flows in the flow tables."),
		"uncommitted":    desc("uncommitted_records", "Records consumed but not yet committed."),
		"lag":            desc("commit_lag", "Records between the committed offsets and the high watermarks."),
	}}
}

func (k *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range k.descs {
		ch <- d
	}
}

func (k *collector) Collect(ch chan<- prometheus.Metric) {
	c := k.c
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(k.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(k.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter("records", c.RecordsIn.Load())
	counter("bad_records", c.BadRecords.Load())
	counter("decoded", c.Decoded.Load())
	for r := decode.Reason(1); r < decode.NumReasons; r++ {
		counter("decode_errors", c.DecodeErrors[r].Load(), r.String())
	}
	counter("filtered", c.Filtered.Load())
	counter("packets", c.PacketsWritten.Load())
	counter("blocks", c.BlocksWritten.Load())
	counter("block_bytes", c.BlockBytes.Load())
	counter("flows", c.FlowsWritten.Load())
	counter("flow_updates", c.FlowUpdates.Load())
	counter("evicted", c.FlowsEvicted.Load())
	counter("flows_filtered", c.FlowsFiltered.Load())
	counter("published", c.FlowsPublished.Load())
	counter("packet_records", c.PacketRecordsPublished.Load())
	counter("traffic_rows", c.TrafficRowsWritten.Load())
	counter("edge_rows", c.EdgeRowsWritten.Load())
	counter("sink_errors", c.CassandraErrors.Load(), "cassandra")
	counter("sink_errors", c.KafkaErrors.Load(), "kafka")
	counter("sink_errors", c.IPFIXErrors.Load(), "ipfix")
	counter("exported", c.FlowsExported.Load())
	counter("retries", c.Retries.Load())
	counter("commits", c.Commits.Load())
	gauge("flows_active", c.FlowsActive.Load())
	gauge("uncommitted", c.Uncommitted.Load())
	gauge("lag", c.Lag.Load())
}
