package sensor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
)

// Describe and Collect make the sensor a Prometheus collector that reads its
// counters at scrape time, so nothing on the capture path touches Prometheus.
func (s *Sensor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descDrops, descBuffered} {
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
		ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(c.Buffered()), name)
	}
}

// serve starts the metrics and health endpoints (one server when both
// addresses are the same). Listening errors are returned at once, naming the
// flag; the servers stop when ctx ends.
func (s *Sensor) serve(ctx context.Context) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	health := metrics
	if s.cfg.HealthAddr != s.cfg.MetricsAddr {
		health = http.NewServeMux()
	}
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "capture rings or Kafka not up yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	servers := []struct {
		flag, addr string
		mux        *http.ServeMux
	}{{"--metrics-addr", s.cfg.MetricsAddr, metrics}}
	if health != metrics {
		servers = append(servers, struct {
			flag, addr string
			mux        *http.ServeMux
		}{"--health-addr", s.cfg.HealthAddr, health})
	}
	for _, sv := range servers {
		if sv.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", sv.addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", sv.flag, sv.addr, err)
		}
		s.addrs = append(s.addrs, ln.Addr().String())
		srv := &http.Server{Handler: sv.mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server stopped", "addr", ln.Addr().String(), "error", err)
			}
		}()
		go func() {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(shut)
		}()
	}
	return nil
}
