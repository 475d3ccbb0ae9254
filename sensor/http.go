package sensor

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"capfleet.dev/capfleet/internal/workload"
)

var (
	descPackets = prometheus.NewDesc("capfleet_sensor_packets_total",
		"Packets by what became of them: captured (read off the ring), sampled_out, published (acknowledged by Kafka).",
		[]string{"interface", "outcome"}, nil)
	descBytes = prometheus.NewDesc("capfleet_sensor_bytes_total",
		"Bytes captured (length on the wire) and published (frame bytes acknowledged by Kafka).",
		[]string{"interface", "outcome"}, nil)
	descDrops = prometheus.NewDesc("capfleet_sensor_drops_total",
		"Packets lost, by cause: kernel (capture ring full), interface (rx_dropped), buffer_full (producer buffer), produce_failed (Kafka).",
		[]string{"interface", "cause"}, nil)
	descBuffered = prometheus.NewDesc("capfleet_sensor_buffered_packets",
		"Packets waiting in the producer buffer.", []string{"interface"}, nil)
	descMetaUnread = prometheus.NewDesc("capfleet_sensor_ring_meta_unread_total",
		"Frames whose ring header did not describe them: published without the outer VLAN tag the kernel removed, or on the any interface dropped (nothing to frame them with).",
		[]string{"interface"}, nil)
)

// Describe and Collect make the sensor a Prometheus collector that reads its
// counters at scrape time, so nothing on the capture path touches Prometheus.
func (s *Sensor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descDrops, descBuffered, descMetaUnread} {
		ch <- d
	}
}

func (s *Sensor) Collect(ch chan<- prometheus.Metric) {
	for _, ic := range s.ifaces {
		c, name := ic.snapshot(), ic.name
		counter := func(d *prometheus.Desc, v uint64, label string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name, label)
		}
		counter(descPackets, c.PacketsCaptured, "captured")
		counter(descPackets, c.PacketsSampledOut, "sampled_out")
		counter(descPackets, c.PacketsPublished, "published")
		counter(descBytes, c.BytesCaptured, "captured")
		counter(descBytes, c.BytesPublished, "published")
		counter(descDrops, c.KernelDrops, "kernel")
		counter(descDrops, c.InterfaceDrops, "interface")
		counter(descDrops, c.BufferDrops, "buffer_full")
		counter(descDrops, c.ProduceFailures, "produce_failed")
		ch <- prometheus.MustNewConstMetric(descMetaUnread, prometheus.CounterValue, float64(c.MetaUnread), name)
		ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(c.Buffered()), name)
	}
}

// serve starts the metrics and health endpoints until ctx ends.
func (s *Sensor) serve(ctx context.Context) error {
	srv, err := workload.Serve(ctx, workload.HTTP{
		MetricsAddr: s.cfg.MetricsAddr,
		HealthAddr:  s.cfg.HealthAddr,
		Registry:    workload.NewRegistry(s),
		Healthy:     s.Healthy,
		Ready:       s.readiness,
		ReadyBody:   "ready\n",
	}, s.log)
	if err != nil {
		return err
	}
	for _, a := range srv.Addrs() {
		s.addrs = append(s.addrs, a.String())
	}
	return nil
}

// readiness is Ready as the readiness probe's answer.
func (s *Sensor) readiness() error {
	if !s.Ready() {
		return errors.New("capture rings or Kafka not up yet")
	}
	return nil
}
