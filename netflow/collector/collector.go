// Package collector receives NetFlow v5/v9 and IPFIX export packets over UDP, decodes them (package
// netflow) and stores the flows in Cassandra's flow tables through the store's flow writer, so that
// `capfleet query flows | top | graph` answer for exporters as they do for sensors.
package collector

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// Config tunes a Collector. Zero values pick the defaults.
type Config struct {
	Listen          string        // UDP address to receive on (default ":2055")
	TemplateTimeout time.Duration // see netflow.Config (default netflow.DefaultTemplateTimeout)
	// SensorPrefix names stored flows: their sensor is the prefix and the exporter's address
	// (default "netflow:"), so `query top --sensor netflow:192.0.2.1` selects one exporter.
	SensorPrefix  string
	FlowTTL       time.Duration // time to live of stored flows (0: forever)
	FlushInterval time.Duration // how often received flows are written (default 1s)
	// MaxPending bounds the flows received but not yet written (default 200000). While Cassandra is
	// away the writer retries; past the bound new flows are dropped and counted, not queued without end.
	MaxPending int
	ReadBuffer int // socket receive buffer in bytes (default 8 MiB), against bursts
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":2055"
	}
	if c.SensorPrefix == "" {
		c.SensorPrefix = "netflow:"
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 200_000
	}
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = 8 << 20
	}
	return c
}

// FlowWriter stores flows; *store.Writer is one.
type FlowWriter interface {
	WriteFlows(ctx context.Context, flows []store.Flow, ttl time.Duration) error
}

// Counters are monotonic counts (Exporters is a level), read by metrics and status at any time.
type Counters struct {
	Datagrams        atomic.Uint64
	Records          atomic.Uint64
	OptionRecords    atomic.Uint64
	Templates        atomic.Uint64
	SequenceGaps     atomic.Uint64
	SequenceErrors   atomic.Uint64
	TemplateErrors   atomic.Uint64
	Malformed        atomic.Uint64
	TemplatesExpired atomic.Uint64
	SessionsRefused  atomic.Uint64
	Exporters        atomic.Int64
	FlowsWritten     atomic.Uint64
	FlowsDropped     atomic.Uint64 // received, but MaxPending were already waiting for the writer
	WriteErrors      atomic.Uint64
}

// Collector is one UDP socket and the decoder and writer behind it.
type Collector struct {
	cfg  Config
	conn *net.UDPConn
	w    FlowWriter
	log  *slog.Logger
	C    *Counters

	mu sync.Mutex
	// pending are records as decoded: turning them into stored flows (two hashes each) is left to the
	// writer's goroutine, so the receiving one drains the socket sooner.
	pending []netflow.Record
	failing atomic.Bool
}

// New binds the socket. w may be nil: flows are then decoded and counted only.
func New(cfg Config, w FlowWriter, log *slog.Logger) (*Collector, error) {
	cfg = cfg.withDefaults()
	addr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	// Best effort: the kernel caps it at net.core.rmem_max.
	_ = conn.SetReadBuffer(cfg.ReadBuffer)
	return &Collector{cfg: cfg, conn: conn, w: w, log: log, C: &Counters{}}, nil
}

// Addr is where the collector listens.
func (c *Collector) Addr() net.Addr { return c.conn.LocalAddr() }

// Ready says whether the latest write succeeded (or none was needed yet).
func (c *Collector) Ready() bool { return !c.failing.Load() }

// Run receives until ctx ends, then writes what it holds and returns.
func (c *Collector) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.receive()
	}()
	tick := time.NewTicker(c.cfg.FlushInterval)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			c.flush(ctx)
		}
	}
	c.conn.Close()
	<-done
	// What was received is written before leaving, within a bound.
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !c.flush(fctx) {
		err = errors.New("collector stopped with flows unwritten")
	}
	return err
}

// receive reads datagrams until the socket closes. The decoder is used by this goroutine only.
func (c *Collector) receive() {
	dec := netflow.NewDecoder(netflow.Config{TemplateTimeout: c.cfg.TemplateTimeout})
	buf := make([]byte, 65536)
	var batch []netflow.Record
	emit := func(r *netflow.Record) {
		if c.w != nil {
			batch = append(batch, *r)
		}
	}
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("udp receive failed", "err", err)
			continue
		}
		c.C.Datagrams.Add(1)
		batch = batch[:0]
		// Template expiry runs on the collector's clock: an exporter's export time may be far off.
		_ = dec.Decode(from.Addr(), buf[:n], time.Now(), emit)
		if len(batch) > 0 {
			c.mu.Lock()
			room := max(0, c.cfg.MaxPending-len(c.pending))
			keep := min(room, len(batch))
			c.pending = append(c.pending, batch[:keep]...)
			c.mu.Unlock()
			if keep < len(batch) {
				c.C.FlowsDropped.Add(uint64(len(batch) - keep))
			}
		}
		// Counted once queued: a reader who sees a record counted finds it pending, written or dropped.
		c.publish(dec)
	}
}

// publish copies the decoder's counters where metrics read them.
func (c *Collector) publish(d *netflow.Decoder) {
	s := d.Stats
	c.C.Records.Store(s.Records)
	c.C.OptionRecords.Store(s.OptionRecords)
	c.C.Templates.Store(s.Templates)
	c.C.SequenceGaps.Store(s.SequenceGaps)
	c.C.SequenceErrors.Store(s.SequenceErrors)
	c.C.TemplateErrors.Store(s.TemplateErrors)
	c.C.Malformed.Store(s.Malformed)
	c.C.TemplatesExpired.Store(s.Expired)
	c.C.SessionsRefused.Store(s.SessionsRefused)
	c.C.Exporters.Store(int64(d.Exporters()))
}

// flush writes the pending flows; false when they could not be written before ctx ended (they stay
// pending for the next try).
func (c *Collector) flush(ctx context.Context) bool {
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(batch) == 0 || c.w == nil {
		return true
	}
	flows := make([]store.Flow, len(batch))
	for i := range batch {
		flows[i] = ToStoreFlow(&batch[i], c.cfg.SensorPrefix)
	}
	if err := c.w.WriteFlows(ctx, flows, c.cfg.FlowTTL); err != nil {
		c.WriteFailed(err)
		c.mu.Lock()
		c.pending = append(batch, c.pending...)
		if over := len(c.pending) - c.cfg.MaxPending; over > 0 {
			c.pending = c.pending[over:]
			c.C.FlowsDropped.Add(uint64(over))
		}
		c.mu.Unlock()
		return false
	}
	c.failing.Store(false)
	c.C.FlowsWritten.Add(uint64(len(batch)))
	return true
}

// WriteFailed counts a failed write attempt (the store's writer calls it for each retry too).
func (c *Collector) WriteFailed(err error) {
	c.C.WriteErrors.Add(1)
	c.failing.Store(true)
	c.log.Warn("cassandra write failed", "err", err)
}

// ToStoreFlow maps a NetFlow record onto a stored flow. NetFlow flows are one-way: the source is the
// originator and the responder's counters stay 0. The exporter's octets are IP bytes (headers
// included), so they go to orig_ip_bytes; orig_bytes, Zeek's payload bytes, is not known and stays 0.
// TCP flags are the OR of the flow's packets; state and history, which need the packets' order, are
// empty. The UID is a hash of the exporter, its domain and the whole record, so a record received
// twice is stored once.
func ToStoreFlow(r *netflow.Record, sensorPrefix string) store.Flow {
	src, dst := r.SrcAddr.Unmap(), r.DstAddr.Unmap()
	sport, dport := r.SrcPort, r.DstPort
	if r.Proto == 1 || r.Proto == 58 {
		// NetFlow carries ICMP's type and code as the destination port; Zeek as the ports.
		sport, dport = r.DstPort>>8, r.DstPort&0xff
	}
	f := store.Flow{
		UID:         recordUID(r),
		Sensor:      sensorPrefix + r.Exporter.String(),
		Start:       r.Start,
		End:         r.End,
		Proto:       r.Proto,
		OrigAddr:    src,
		OrigPort:    sport,
		RespAddr:    dst,
		RespPort:    dport,
		OrigPkts:    r.Packets,
		OrigIPBytes: r.Bytes,
		TCPFlags:    r.TCPFlags,
		Closed:      true,
	}
	if src.IsValid() && dst.IsValid() {
		f.CommunityID = flow.CommunityID(0, src, dst, sport, dport, r.Proto)
	}
	return f
}

// recordUID is "N" and 16 base64url characters of a SHA-256 over the record's identity and counts.
func recordUID(r *netflow.Record) string {
	h := sha256.New()
	var b [8]byte
	h.Write(r.Exporter.AsSlice())
	binary.BigEndian.PutUint16(b[:], r.Version)
	binary.BigEndian.PutUint32(b[2:], r.Domain)
	h.Write(b[:6])
	for _, a := range []netip.Addr{r.SrcAddr, r.DstAddr} {
		s := a.AsSlice()
		h.Write([]byte{byte(len(s))})
		h.Write(s)
	}
	for _, v := range []uint64{uint64(r.SrcPort), uint64(r.DstPort), uint64(r.Proto), r.Packets, r.Bytes,
		uint64(r.Start.UnixNano()), uint64(r.End.UnixNano()), uint64(r.TCPFlags)} {
		binary.BigEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return "N" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}
