// Package replay plays a capture file onto a network interface or into a
// packets topic, paced like tcpreplay: the capture's own timing (optionally
// sped up), a fixed packet or bit rate, or top speed, for a number of loops.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"capfleet.dev/capfleet/linktype"
)

// Target sends frames somewhere. Send may complete later (a Kafka produce);
// it calls done exactly once per packet with the frame size and the outcome,
// and Flush returns once every done has been called. p.Data is only valid
// until Send returns: a target that sends later copies it.
type Target interface {
	Send(p Packet, done func(size int, err error))
	Flush(ctx context.Context) error
	Close() error
	String() string
}

// StampedTarget is a Target that stamps what it sends with the time it was
// handed over (a Topic's record timestamp), and takes that time from the
// caller: at top speed the replayer reads the clock once for many packets
// rather than once for each. SendAt returns the time for the next packet:
// now, or a later one when it had to wait (for the broker).
type StampedTarget interface {
	Target
	SendAt(p Packet, done func(size int, err error), now time.Time) time.Time
}

// Config is one replay run.
type Config struct {
	Open   Opener
	Pace   Pace
	Loops  int    // passes over the capture; 0 repeats until the context ends
	Limit  uint64 // stop after this many packets in total; 0 = no limit
	Target Target
	// LinkTypes, when set, lists the only link types the target can send;
	// the pre-scan refuses captures holding others (an Ethernet interface
	// cannot put a raw-IP or 802.11 record on the wire as it was captured).
	LinkTypes []linktype.Type
}

// ErrNoPackets is the pre-scan's verdict on a capture without a single packet,
// which would otherwise loop forever doing nothing with --loop 0.
var ErrNoPackets = errors.New("the capture holds no packets")

// Replayer runs one Config and reports its progress while it runs.
type Replayer struct {
	cfg Config

	scanned     bool
	filePackets uint64
	fileBytes   uint64
	totalPkts   uint64
	totalBytes  uint64

	sent, sentBytes, failed, failedBytes, truncated, loops atomic.Uint64
	startNanos                                             atomic.Int64
	finished                                               atomic.Bool

	mu           sync.Mutex
	firstFailure error

	// done is record, made into a func value once: a method value passed on
	// each call to the target would be allocated each time.
	done func(size int, err error)
}

// New checks the Config and returns a Replayer for it.
func New(cfg Config) (*Replayer, error) {
	if cfg.Open == nil {
		return nil, errors.New("replay: no capture to read")
	}
	if cfg.Target == nil {
		return nil, errors.New("replay: no target to send to")
	}
	if cfg.Loops < 0 {
		return nil, fmt.Errorf("replay: loop count %d: must be 0 (forever) or more", cfg.Loops)
	}
	if err := cfg.Pace.Validate(); err != nil {
		return nil, err
	}
	r := &Replayer{cfg: cfg}
	r.done = r.record
	return r, nil
}

// Scan reads the capture once to learn its packet and byte totals (the
// denominator of progress) and to find a damaged file before anything is
// sent rather than halfway through a replay.
func (r *Replayer) Scan() error {
	if r.scanned {
		return nil
	}
	src, err := r.cfg.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		p, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w (after %d good packets; nothing was sent)", err, r.filePackets)
		}
		if !r.linkTypeAllowed(p.LinkType) {
			return fmt.Errorf("packet %d has link type %s (%d), which %s cannot send", r.filePackets+1, p.LinkType, uint32(p.LinkType), r.cfg.Target)
		}
		r.filePackets++
		r.fileBytes += uint64(len(p.Data))
	}
	if r.filePackets == 0 {
		return ErrNoPackets
	}
	if err := r.totals(); err != nil {
		return err
	}
	r.scanned = true
	return nil
}

func (r *Replayer) linkTypeAllowed(lt linktype.Type) bool {
	if len(r.cfg.LinkTypes) == 0 {
		return true
	}
	for _, ok := range r.cfg.LinkTypes {
		if lt == ok {
			return true
		}
	}
	return false
}

// totals works out what the whole run sends.
func (r *Replayer) totals() error {
	loops := uint64(r.cfg.Loops)
	limit := r.cfg.Limit
	if loops > 0 && (limit == 0 || limit >= loops*r.filePackets) {
		r.totalPkts = loops * r.filePackets
		r.totalBytes = loops * r.fileBytes
		return nil
	}
	if limit == 0 {
		return nil // endless: no total, progress reports counts only
	}
	r.totalPkts = limit
	r.totalBytes = limit / r.filePackets * r.fileBytes
	partial, err := r.prefixBytes(limit % r.filePackets)
	r.totalBytes += partial
	return err
}

// prefixBytes is the size of the first n packets of the capture, for a limit
// that ends the run inside a pass.
func (r *Replayer) prefixBytes(n uint64) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	src, err := r.cfg.Open()
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var b uint64
	for i := uint64(0); i < n; i++ {
		p, err := src.Next()
		if err != nil {
			return 0, fmt.Errorf("reading the capture again: %w", err)
		}
		b += uint64(len(p.Data))
	}
	return b, nil
}

// Run scans the capture if Scan was not called, then sends it. On return,
// every packet handed to the target has been accounted for as sent or failed.
func (r *Replayer) Run(ctx context.Context) (Summary, error) {
	if err := r.Scan(); err != nil {
		return Summary{}, err
	}
	start := time.Now()
	r.startNanos.Store(start.UnixNano())
	runErr := r.send(ctx, start)
	// Outcomes of packets already handed over are still wanted after a
	// cancel, so the flush gets its own deadline.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.cfg.Target.Flush(fctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("waiting for %s: %w", r.cfg.Target, err)
	}
	r.finished.Store(true)
	return r.summary(time.Since(start)), runErr
}

// send runs the feeder and the sender until the run ends, and returns once
// the feeder has closed the capture; at top speed to a target that takes
// packets one by one, it sends them as it reads them (sendDirect).
func (r *Replayer) send(ctx context.Context, start time.Time) error {
	if _, batches := r.cfg.Target.(BatchTarget); r.cfg.Pace.Mode == TopSpeed && !batches {
		return r.sendDirect(ctx)
	}
	full := make(chan *batch, batchesInFlight)
	free := make(chan *batch, batchesInFlight)
	for range batchesInFlight - 1 {
		free <- newBatch()
	}
	stop := make(chan struct{})
	f := &feeder{cfg: &r.cfg, sched: newSchedule(r.cfg.Pace), paced: r.cfg.Pace.Mode != TopSpeed,
		cur: newBatch(), full: full, free: free, stop: stop}
	fed := make(chan struct{})
	go func() { defer close(fed); f.run() }()
	err := r.sendBatches(ctx, start, full, free)
	close(stop)
	<-fed
	return err
}

// record is the done callback of Target.Send.
func (r *Replayer) record(size int, err error) {
	if err == nil {
		r.sent.Add(1)
		r.sentBytes.Add(uint64(size))
		return
	}
	r.failed.Add(1)
	r.failedBytes.Add(uint64(size))
	r.mu.Lock()
	if r.firstFailure == nil {
		r.firstFailure = err
	}
	r.mu.Unlock()
}

// Progress is a snapshot of a run: monotonic counters and the totals the
// pre-scan found, for metrics, a progress bar or a heartbeat.
type Progress struct {
	PacketsSent      uint64
	BytesSent        uint64
	PacketsFailed    uint64
	BytesFailed      uint64
	PacketsTruncated uint64
	LoopsDone        uint64
	// PacketsTotal and BytesTotal are what the whole run sends (all loops,
	// cut at the limit); zero when it loops until stopped.
	PacketsTotal uint64
	BytesTotal   uint64
	Started      time.Time // zero until the first packet is due
	Finished     bool
}

// Fraction is the share of the run done, by packets, in [0, 1]; 0 when the run has no end.
func (p Progress) Fraction() float64 {
	if p.PacketsTotal == 0 {
		return 0
	}
	return float64(p.PacketsSent+p.PacketsFailed) / float64(p.PacketsTotal)
}

// Progress returns the current counters; safe to call from any goroutine.
func (r *Replayer) Progress() Progress {
	p := Progress{
		PacketsSent:      r.sent.Load(),
		BytesSent:        r.sentBytes.Load(),
		PacketsFailed:    r.failed.Load(),
		BytesFailed:      r.failedBytes.Load(),
		PacketsTruncated: r.truncated.Load(),
		LoopsDone:        r.loops.Load(),
		PacketsTotal:     r.totalPkts,
		BytesTotal:       r.totalBytes,
		Finished:         r.finished.Load(),
	}
	if ns := r.startNanos.Load(); ns != 0 {
		p.Started = time.Unix(0, ns)
	}
	return p
}

// FilePackets and FileBytes are one pass over the capture, known after Scan.
func (r *Replayer) FilePackets() uint64 { return r.filePackets }
func (r *Replayer) FileBytes() uint64   { return r.fileBytes }

func (r *Replayer) summary(elapsed time.Duration) Summary {
	s := Summary{Progress: r.Progress(), Elapsed: elapsed, Target: r.cfg.Target.String()}
	r.mu.Lock()
	s.FirstFailure = r.firstFailure
	r.mu.Unlock()
	return s
}
