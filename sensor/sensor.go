// Package sensor captures packets from AF_PACKET rings on a node's interfaces,
// filtered by a BPF program in the kernel, and publishes one Kafka record per
// packet in the packetrecord format. Kafka never stalls capture: what the
// producer cannot take is dropped and counted with its cause.
package sensor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Sensor is one configured capture: interfaces, filter and producer.
type Sensor struct {
	cfg     Config
	log     *slog.Logger
	links   []link
	filters []*filter // by link, compiled for each interface
	ifaces  []*ifaceCounters
	rings   []*ring
	ready   atomic.Bool
	started chan struct{} // closed once the rings are open and the broker answered
	addrs   []string      // where the HTTP endpoints listen (tests ask for port 0)
	// ringBytes is the kernel memory of all rings, which the pod's limit counts and Go's does not.
	ringBytes int64
}

// New checks the configuration, finds the interfaces and compiles the filter,
// so that every mistake in the flags is reported before anything starts.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Sensor{cfg: cfg, log: log, started: make(chan struct{})}
	err := inNetNS(cfg.NetNS, func() error {
		for _, name := range cfg.Interfaces {
			l, err := lookupLink(name)
			if err != nil {
				return err
			}
			f, err := compileFilter(cfg.Filter, l.Name, l.LinkType, cfg.SnapLen)
			if err != nil {
				return err
			}
			s.links = append(s.links, l)
			s.filters = append(s.filters, f)
			s.ifaces = append(s.ifaces, &ifaceCounters{name: l.Name})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Ready is true once the rings are open and the broker has answered.
func (s *Sensor) Ready() bool { return s.ready.Load() }

// Started is closed once capture has begun (and stays closed after it ends):
// what happened on the wire before then was never the sensor's to count.
func (s *Sensor) Started() <-chan struct{} { return s.started }

// Healthy fails once an interface the sensor captures on has vanished: its
// rings stay bound to the old interface, and only a restart, which looks the
// name up again, captures on whatever replaced it.
func (s *Sensor) Healthy() error {
	for _, ic := range s.ifaces {
		if ic.gone.Load() {
			return fmt.Errorf("interface %q vanished", ic.name)
		}
	}
	return nil
}

// Counters sums the counters of all interfaces.
func (s *Sensor) Counters() Counters {
	var total Counters
	for _, ic := range s.ifaces {
		total = total.Add(ic.snapshot())
	}
	return total
}

// WorkerCounters are the counters of each ring of each interface, by interface name: one ring, or
// the --fanout-workers of a fanout group, whose sum is the interface's.
func (s *Sensor) WorkerCounters() map[string][]Counters {
	out := make(map[string][]Counters, len(s.ifaces))
	for _, ic := range s.ifaces {
		out[ic.name] = ic.workerSnapshots()
	}
	return out
}

// InterfaceCounters are the counters of each interface by name.
func (s *Sensor) InterfaceCounters() map[string]Counters {
	out := make(map[string]Counters, len(s.ifaces))
	for _, ic := range s.ifaces {
		out[ic.name] = ic.snapshot()
	}
	return out
}

// Run captures until ctx ends, then flushes what Kafka will still take within
// the flush timeout. It fails only at start (Kafka unreachable, rings that
// will not open); once capturing, a broker that goes away costs counted
// drops, never the process.
func (s *Sensor) Run(ctx context.Context) error {
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	if err := s.serve(httpCtx); err != nil {
		return err
	}
	pub, err := newPublisher(ctx, &s.cfg, s.log)
	if err != nil {
		return err
	}
	if s.cfg.ExcludeKafka {
		if err := s.excludeKafka(ctx, pub.cl); err != nil {
			pub.close(0)
			return err
		}
	}
	rings, err := s.openRings()
	if err != nil {
		pub.close(0)
		return err
	}
	defer func() {
		for _, r := range rings {
			r.close()
		}
	}()
	s.rings = rings
	if l := goMemoryLimit(s.cfg.MemoryLimit, s.ringBytes); l > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(l)
	}
	s.pollStats(rings) // baselines for rx_dropped
	s.ready.Store(true)
	close(s.started)
	s.log.Info("capturing", "interfaces", s.cfg.Interfaces, "rings", len(rings), "filter", s.filters[0].expr,
		"topic", s.cfg.Topic, "node", s.cfg.Node)

	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.capture(ctx, pub, s.cfg.Node, s.cfg.SnapLen, s.cfg.SampleRate, s.log)
		}()
	}
	s.watch(ctx, rings)
	wg.Wait()
	s.pollStats(rings)
	s.ready.Store(false)
	s.drain(pub)
	return nil
}

// drain gives Kafka up to the flush timeout for what is buffered; the producer fails the rest, and
// counts it, before it returns, so the final counters account for every packet.
func (s *Sensor) drain(pub *publisher) {
	buffered := s.Counters().Buffered()
	if err := pub.close(s.cfg.FlushTimeout); err != nil {
		s.log.Warn("Kafka did not take the whole buffer before --flush-timeout; the rest counts as produce failures",
			"buffered", buffered, "error", err)
	}
	final, _ := json.Marshal(s.Counters())
	s.log.Info("stopped", "counters", string(final))
}

// excludeKafka recompiles each interface's filter with the brokers' endpoints
// left out.
func (s *Sensor) excludeKafka(ctx context.Context, cl *kgo.Client) error {
	eps, err := brokerEndpoints(ctx, cl, s.cfg.Kafka.Brokers)
	if err != nil {
		return err
	}
	expr := excludeEndpoints(s.cfg.Filter, eps)
	return inNetNS(s.cfg.NetNS, func() error {
		for i, l := range s.links {
			f, err := compileFilter(expr, l.Name, l.LinkType, s.cfg.SnapLen)
			if err != nil {
				return fmt.Errorf("filter with the Kafka brokers left out: %w", err)
			}
			s.filters[i] = f
		}
		return nil
	})
}

func (s *Sensor) openRings() ([]*ring, error) {
	var rings []*ring
	err := inNetNS(s.cfg.NetNS, func() error {
		for i, l := range s.links {
			o := ringOptions{blockSize: s.cfg.RingBlockSizeKB * 1024, blocks: s.cfg.RingBlocks, promisc: s.cfg.Promisc}
			autoBlock := o.blockSize == 0
			if autoBlock {
				o.blockSize = minAutoBlock // counted in these until the ring's size is known
				if o.blockSize < s.cfg.SnapLen+tpacketOverhead {
					o.blockSize = autoBlockSize(0, s.cfg.SnapLen)
				}
			}
			auto := o.blocks == 0
			if auto {
				o.blocks = autoRingBlocks(l.SpeedMbps, s.cfg.SnapLen, o.blockSize, s.cfg.ringsPerInterface())
			}
			fit, err := fitRings(s.cfg.ringShare(), s.cfg.ringsPerInterface(), o.blockSize, o.blocks, auto)
			if err != nil {
				return fmt.Errorf("interface %s: %w", l.Name, err)
			}
			if fit < o.blocks {
				s.log.Warn("rings shrunk to fit the memory limit", "interface", l.Name, "blocks", o.blocks, "fit", fit, "memory_limit_mib", s.cfg.MemoryLimit>>20)
				o.blocks = fit
			}
			if autoBlock && auto {
				// The ring's size is settled: regroup it into larger blocks (never more bytes).
				ringBytes := o.blocks * o.blockSize
				o.blockSize = autoBlockSize(ringBytes, s.cfg.SnapLen)
				o.blocks = max(ringBytes/o.blockSize, 2)
			}
			s.ringBytes += int64(o.blocks) * int64(o.blockSize) * int64(s.cfg.ringsPerInterface())
			s.log.Info("ring", "interface", l.Name, "speed_mbps", l.SpeedMbps, "rings", s.cfg.ringsPerInterface(),
				"blocks", o.blocks, "block_kib", o.blockSize/1024, "mib_each", o.blocks*o.blockSize>>20)
			if s.cfg.FanoutGroup != 0 {
				o.fanoutGroup = s.cfg.FanoutGroup + i
			}
			for member := range s.cfg.ringsPerInterface() {
				r, err := openRing(l, s.filters[i], o, member, s.ifaces[i].newWorker())
				if err != nil {
					return err
				}
				rings = append(rings, r)
			}
		}
		return nil
	})
	if err != nil {
		for _, r := range rings {
			r.close()
		}
		return nil, err
	}
	return rings, nil
}

// watch polls drop statistics every second and reports Kafka trouble at most
// every 10 seconds, until ctx ends.
func (s *Sensor) watch(ctx context.Context, rings []*ring) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last Counters
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.pollStats(rings)
		if time.Since(lastLog) < 10*time.Second {
			continue
		}
		now := s.Counters()
		if now.BufferDrops > last.BufferDrops || now.ProduceFailures > last.ProduceFailures {
			s.log.Warn("packets lost to Kafka trouble", "buffer_full", now.BufferDrops-last.BufferDrops,
				"produce_failed", now.ProduceFailures-last.ProduceFailures, "last_error", s.lastProduceError())
		}
		last, lastLog = now, time.Now()
	}
}

func (s *Sensor) pollStats(rings []*ring) {
	for _, r := range rings {
		if err := r.pollStats(); err != nil {
			s.log.Warn("socket statistics", "error", err)
		}
	}
	_ = inNetNS(s.cfg.NetNS, func() error {
		for i, l := range s.links {
			if l.Any {
				continue // no one interface: only the ring's own drops are counted
			}
			_, rxDropped, err := linkStats(l.Index)
			switch {
			case errors.Is(err, errLinkGone):
				if !s.ifaces[i].gone.Swap(true) {
					s.log.Error("interface vanished: nothing more is captured on it until the sensor restarts (the liveness probe on /healthz does that)",
						"interface", l.Name)
				}
			case err != nil:
				s.log.Warn("interface statistics", "interface", l.Name, "error", err)
			default:
				s.ifaces[i].observeRxDropped(rxDropped)
			}
		}
		return nil
	})
}

func (s *Sensor) lastProduceError() string {
	for _, ic := range s.ifaces {
		if msg := ic.lastError(); msg != "" {
			return msg
		}
	}
	return ""
}
