package collector

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	c     *Counters
	descs map[string]*prometheus.Desc
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("capfleet_collect_"+name, help, nil, nil)
}

// NewMetrics exposes c to Prometheus, reading the atomics at scrape time. Records per second is
// rate(capfleet_collect_records_total[1m]).
func NewMetrics(c *Counters) prometheus.Collector {
	return &metrics{c: c, descs: map[string]*prometheus.Desc{
		"datagrams":        desc("datagrams_total", "UDP datagrams received."),
		"records":          desc("records_total", "Flow records decoded (NetFlow v5, v9 and IPFIX)."),
		"option_records":   desc("option_records_total", "Options data records decoded (exporter metadata, not flows)."),
		"templates":        desc("templates_total", "Template and options template records received (refreshes included)."),
		"sequence_gaps":    desc("sequence_gaps_total", "Units the exporters' sequence numbers say were lost: flows (v5), export packets (v9), data records (IPFIX)."),
		"sequence_errors":  desc("sequence_errors_total", "Export packets whose sequence number was not the one expected (a gap, reordering or an exporter restart)."),
		"template_errors":  desc("template_errors_total", "Data sets without a live template, and malformed template or data sets."),
		"malformed":        desc("malformed_total", "Datagrams refused as a whole: not NetFlow v5/v9 or IPFIX, or an inconsistent header."),
		"expired":          desc("templates_expired_total", "Templates forgotten after the template timeout without a refresh."),
		"sessions_refused": desc("sessions_refused_total", "Datagrams from new exporter sessions refused because the session table is full."),
		"exporters":        desc("exporters", "Distinct exporter addresses seen."),
		"written":          desc("flows_written_total", "Flow records stored in Cassandra."),
		"dropped":          desc("flows_dropped_total", "Flow records dropped because too many were waiting for Cassandra."),
		"write_errors":     desc("write_errors_total", "Failed Cassandra write attempts."),
	}}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, float64(v))
	}
	counter("datagrams", c.Datagrams.Load())
	counter("records", c.Records.Load())
	counter("option_records", c.OptionRecords.Load())
	counter("templates", c.Templates.Load())
	counter("sequence_gaps", c.SequenceGaps.Load())
	counter("sequence_errors", c.SequenceErrors.Load())
	counter("template_errors", c.TemplateErrors.Load())
	counter("malformed", c.Malformed.Load())
	counter("expired", c.TemplatesExpired.Load())
	counter("sessions_refused", c.SessionsRefused.Load())
	counter("written", c.FlowsWritten.Load())
	counter("dropped", c.FlowsDropped.Load())
	counter("write_errors", c.WriteErrors.Load())
	ch <- prometheus.MustNewConstMetric(m.descs["exporters"], prometheus.GaugeValue, float64(c.Exporters.Load()))
}
