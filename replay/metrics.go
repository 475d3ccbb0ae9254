package replay

import (
	"context"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"capfleet.dev/capfleet/internal/workload"
)

// Register exposes the run's progress on reg. The values are read from the
// Replayer's counters at scrape time, so there is one source of truth.
func (r *Replayer) Register(reg prometheus.Registerer) error {
	counter := func(name, help string, f func(Progress) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "capfleet", Subsystem: "replay", Name: name, Help: help},
			func() float64 { return float64(f(r.Progress())) })
	}
	gauge := func(name, help string, f func(Progress) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "capfleet", Subsystem: "replay", Name: name, Help: help},
			func() float64 { return f(r.Progress()) })
	}
	for _, c := range []prometheus.Collector{
		counter("packets_sent_total", "Packets the target accepted.", func(p Progress) uint64 { return p.PacketsSent }),
		counter("bytes_sent_total", "Frame bytes the target accepted.", func(p Progress) uint64 { return p.BytesSent }),
		counter("packets_failed_total", "Packets the target refused (too big for the interface MTU, produce errors).", func(p Progress) uint64 { return p.PacketsFailed }),
		counter("packets_truncated_total", "Packets sent as captured although the capture kept less than was on the wire.", func(p Progress) uint64 { return p.PacketsTruncated }),
		counter("loops_completed_total", "Full passes over the capture.", func(p Progress) uint64 { return p.LoopsDone }),
		gauge("packets", "Packets the whole run sends (all loops); 0 when it loops until stopped.", func(p Progress) float64 { return float64(p.PacketsTotal) }),
		gauge("bytes", "Frame bytes the whole run sends (all loops); 0 when it loops until stopped.", func(p Progress) float64 { return float64(p.BytesTotal) }),
		gauge("progress_ratio", "Share of the run's packets done (sent or failed), 0 to 1.", func(p Progress) float64 { return p.Fraction() }),
		gauge("start_time_seconds", "When the run started, seconds since the epoch; 0 before.", func(p Progress) float64 {
			if p.Started.IsZero() {
				return 0
			}
			return float64(p.Started.UnixNano()) / 1e9
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ServeMetrics serves reg on addr's /metrics until ctx ends. The listener is
// opened before it returns, so a busy port is an error at start, not later.
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry) (net.Addr, error) {
	srv, err := workload.Serve(ctx, workload.HTTP{MetricsAddr: addr, Registry: reg}, nil)
	if err != nil {
		return nil, err
	}
	if addrs := srv.Addrs(); len(addrs) > 0 {
		return addrs[0], nil
	}
	return nil, nil // addr "" serves nothing
}
