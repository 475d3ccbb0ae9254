package sensor

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// Counters is a snapshot of a sensor's counters since it started. Every field
// only grows, so a heartbeat can publish snapshots and readers derive rates.
//
// Each captured packet that was not sampled out ends up in exactly one of
// PacketsPublished, BufferDrops or ProduceFailures, or is still buffered
// (PacketsCaptured - PacketsSampledOut - those three). KernelDrops count
// packets that never reached the sensor. InterfaceDrops is the growth of the
// interface's rx_dropped, which Linux also bumps for frames its own stack
// throws away after packet sockets got them (802.1ad/QinQ frames with no
// VLAN device, for one): an upper bound on what the NIC and driver lost.
type Counters struct {
	PacketsCaptured   uint64 `json:"packetsCaptured"`   // read off the rings, after the kernel filter
	BytesCaptured     uint64 `json:"bytesCaptured"`     // their length on the wire
	PacketsSampledOut uint64 `json:"packetsSampledOut"` // skipped by --sample-rate on purpose, not a loss
	PacketsPublished  uint64 `json:"packetsPublished"`  // acknowledged by Kafka (acks=all)
	BytesPublished    uint64 `json:"bytesPublished"`    // frame bytes acknowledged (after --snaplen)
	KernelDrops       uint64 `json:"kernelDrops"`       // ring full: PACKET_STATISTICS tp_drops
	InterfaceDrops    uint64 `json:"interfaceDrops"`    // growth of the interface's rx_dropped
	BufferDrops       uint64 `json:"bufferDrops"`       // shed because the producer buffer was full
	ProduceFailures   uint64 `json:"produceFailures"`   // Kafka refused them or they failed at shutdown
	// MetaUnread counts frames whose ring header did not describe them: published without the outer VLAN
	// tag the kernel took off, or, on "any", dropped (no link address to frame them with).
	MetaUnread uint64 `json:"metaUnread,omitempty"`
}

// Add returns the field-wise sum.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		PacketsCaptured:   c.PacketsCaptured + o.PacketsCaptured,
		BytesCaptured:     c.BytesCaptured + o.BytesCaptured,
		PacketsSampledOut: c.PacketsSampledOut + o.PacketsSampledOut,
		PacketsPublished:  c.PacketsPublished + o.PacketsPublished,
		BytesPublished:    c.BytesPublished + o.BytesPublished,
		KernelDrops:       c.KernelDrops + o.KernelDrops,
		InterfaceDrops:    c.InterfaceDrops + o.InterfaceDrops,
		BufferDrops:       c.BufferDrops + o.BufferDrops,
		ProduceFailures:   c.ProduceFailures + o.ProduceFailures,
		MetaUnread:        c.MetaUnread + o.MetaUnread,
	}
}

// Buffered is how many packets are waiting in the producer.
func (c Counters) Buffered() uint64 {
	done := c.PacketsSampledOut + c.PacketsPublished + c.BufferDrops + c.ProduceFailures
	if done > c.PacketsCaptured {
		return 0
	}
	return c.PacketsCaptured - done
}

// ifaceCounters are the live counters of one interface: its own (interface drops, whether it is
// gone) and, in workers, one set per ring, each written by its ring's goroutine and its share of
// the promises, so rings of a fanout group do not contend on one cache line a packet; snapshot sums.
type ifaceCounters struct {
	name string
	// Written by the ring's goroutine for every packet.
	captured, capturedBytes, sampledOut, bufferDrops atomic.Uint64
	// Written by franz-go's promise goroutine for every packet: on a cache line of their own, so the
	// two goroutines (on two cores under load) do not pass one line back and forth a packet.
	_                            cpu.CacheLinePad
	published, publishedBytes    atomic.Uint64
	produceFailures              atomic.Uint64
	lastProduceErr               atomic.Pointer[string]
	_                            cpu.CacheLinePad
	kernelDrops, ifaceDrops      atomic.Uint64
	metaUnread                   atomic.Uint64
	gone                         atomic.Bool // the interface vanished under its rings
	rxDroppedMu                  sync.Mutex
	rxDroppedBase, rxDroppedLast uint64
	rxDroppedSeen                bool
	workersMu                    sync.Mutex
	workers                      []*ifaceCounters
}

// newWorker adds the counters of one more ring of the interface.
func (c *ifaceCounters) newWorker() *ifaceCounters {
	w := &ifaceCounters{name: c.name}
	c.workersMu.Lock()
	c.workers = append(c.workers, w)
	c.workersMu.Unlock()
	return w
}

// eachWorker calls f with the counters of each ring.
func (c *ifaceCounters) eachWorker(f func(*ifaceCounters)) {
	c.workersMu.Lock()
	ws := c.workers
	c.workersMu.Unlock()
	for _, w := range ws {
		f(w)
	}
}

// workerSnapshots are the counters of each ring of the interface (one, or a fanout group's).
func (c *ifaceCounters) workerSnapshots() []Counters {
	var out []Counters
	c.eachWorker(func(w *ifaceCounters) { out = append(out, w.snapshot()) })
	return out
}

// lastError is the last produce error of any of the interface's rings.
func (c *ifaceCounters) lastError() string {
	var msg string
	c.eachWorker(func(w *ifaceCounters) {
		if p := w.lastProduceErr.Load(); p != nil {
			msg = *p
		}
	})
	return msg
}

func (c *ifaceCounters) snapshot() Counters {
	total := c.own()
	c.eachWorker(func(w *ifaceCounters) { total = total.Add(w.own()) })
	return total
}

func (c *ifaceCounters) own() Counters {
	return Counters{
		PacketsCaptured:   c.captured.Load(),
		BytesCaptured:     c.capturedBytes.Load(),
		PacketsSampledOut: c.sampledOut.Load(),
		PacketsPublished:  c.published.Load(),
		BytesPublished:    c.publishedBytes.Load(),
		KernelDrops:       c.kernelDrops.Load(),
		InterfaceDrops:    c.ifaceDrops.Load(),
		BufferDrops:       c.bufferDrops.Load(),
		ProduceFailures:   c.produceFailures.Load(),
		MetaUnread:        c.metaUnread.Load(),
	}
}

// countBatch records the outcome of producing a batch of records whose frames hold bytes.
func (c *ifaceCounters) countBatch(records, bytes int, err error) {
	if err == nil {
		c.published.Add(uint64(records))
		c.publishedBytes.Add(uint64(bytes))
		return
	}
	c.produceFailures.Add(uint64(records))
	msg := err.Error()
	c.lastProduceErr.Store(&msg)
}

// observeRxDropped turns the interface's rx_dropped into growth since the
// sensor started. A counter that went backwards (the interface was
// recreated) counts from zero again, so growth is neither lost nor counted twice.
func (c *ifaceCounters) observeRxDropped(v uint64) {
	c.rxDroppedMu.Lock()
	defer c.rxDroppedMu.Unlock()
	switch {
	case !c.rxDroppedSeen:
		c.rxDroppedSeen = true
	case v < c.rxDroppedLast:
		c.ifaceDrops.Add(v)
	default:
		c.ifaceDrops.Add(v - c.rxDroppedLast)
	}
	c.rxDroppedLast = v
}
