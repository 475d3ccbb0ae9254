// Package workload is what the capfleet workloads (sensor, replay, process) run
// besides their own work: the metrics and probe endpoints, the heartbeat, and
// the packets-topic producer. One copy, so that the three behave alike.
package workload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownGrace bounds how long a stopping server waits for open scrapes.
const shutdownGrace = 2 * time.Second

// HTTP says what to serve where. An empty address serves nothing there; the
// same address for both serves both from one listener.
type HTTP struct {
	MetricsAddr string // --metrics-addr: Prometheus /metrics
	HealthAddr  string // --health-addr: /healthz and /readyz
	Registry    *prometheus.Registry

	// Healthy answers /healthz: an error fails the liveness probe with its
	// text. Nil is always healthy.
	Healthy func() error
	// Ready answers /readyz: an error fails the readiness probe with its
	// text; nil (the func or its result) answers ReadyBody.
	Ready     func() error
	ReadyBody string // "ok\n" when empty
}

// NewRegistry holds cs and the Go runtime and process collectors, which every
// long-running workload exports alike.
func NewRegistry(cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))...)
	return reg
}

// Servers are the listeners Serve started.
type Servers struct {
	addrs  []net.Addr
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Addrs are where the servers listen, metrics first (tests ask for port 0).
func (s *Servers) Addrs() []net.Addr { return s.addrs }

// Close shuts the servers down gracefully and waits until they are.
func (s *Servers) Close() {
	s.cancel()
	s.wg.Wait()
}

// Serve starts the endpoints of h until ctx ends or Close is called. The
// listeners are open when it returns, so a busy port is an error at start
// (naming the flag), not a log line later.
func Serve(ctx context.Context, h HTTP, log *slog.Logger) (*Servers, error) {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Servers{cancel: cancel}
	for _, l := range h.listeners() {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s %s: %w", l.flag, l.addr, err)
		}
		s.addrs = append(s.addrs, ln.Addr())
		s.run(ctx, ln, l.mux, log)
	}
	return s, nil
}

type listener struct {
	flag, addr string
	mux        *http.ServeMux
}

// listeners pairs each address with its handlers: one mux when the
// addresses are the same, since one port cannot be listened on twice.
func (h HTTP) listeners() []listener {
	metrics := http.NewServeMux()
	if h.Registry != nil {
		metrics.Handle("/metrics", promhttp.HandlerFor(h.Registry, promhttp.HandlerOpts{Registry: h.Registry}))
	}
	if h.HealthAddr == h.MetricsAddr {
		h.addProbes(metrics)
		return []listener{{"--metrics-addr", h.MetricsAddr, metrics}}
	}
	health := http.NewServeMux()
	h.addProbes(health)
	return []listener{{"--metrics-addr", h.MetricsAddr, metrics}, {"--health-addr", h.HealthAddr, health}}
}

func (h HTTP) addProbes(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", probe(h.Healthy, "ok\n"))
	body := h.ReadyBody
	if body == "" {
		body = "ok\n"
	}
	mux.HandleFunc("/readyz", probe(h.Ready, body))
}

// probe answers 503 with check's error, else 200 with body.
func probe(check func() error, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if check != nil {
			if err := check(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte(body))
	}
}

func (s *Servers) run(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
}
