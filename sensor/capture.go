package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"capfleet.dev/capfleet/batchproducer"
	"capfleet.dev/capfleet/packetrecord"
)

// ring is one AF_PACKET TPACKET_V3 socket on one interface.
type ring struct {
	tp       *afpacket.TPacket
	blocks   *blockRing
	waiter   *ringWaiter
	link     link
	filter   *filter
	attached time.Time // packets stamped before this may have missed the kernel filter
	// duplicateUntil: a second ring of a fanout group receives every packet
	// until it joins the group, packets the group also delivers.
	duplicateUntil time.Time
	macoff         int
	tagged         []byte // reused for frames with their VLAN tag put back; Encode copies
	cooked         []byte // reused for frames given their cooked header on "any"; Encode copies
	counters       *ifaceCounters

	statsMu         sync.Mutex
	lastKernelDrops uint64
	pollErrors      atomic.Uint64
}

// socketFD is the ring's socket descriptor, which afpacket keeps unexported:
// reflection reads the field without touching the socket. It is needed for
// two socket options afpacket does not offer.
func (r *ring) socketFD() (int, bool) {
	f := reflect.ValueOf(r.tp).Elem().FieldByName("fd")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return -1, false
	}
	return int(f.Int()), true
}

// takeSocketError reads and so clears the socket's pending error (ENETDOWN
// after the interface went down). Left pending, it would make every later
// poll report POLLERR even once the interface is back up.
func (r *ring) takeSocketError() error {
	fd, ok := r.socketFD()
	if !ok {
		return afpacket.ErrPoll
	}
	errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("%w (SO_ERROR: %v)", afpacket.ErrPoll, err)
	}
	if errno == 0 {
		return afpacket.ErrPoll
	}
	return fmt.Errorf("%w: %w", afpacket.ErrPoll, unix.Errno(errno))
}

// setPromisc puts the interface in promiscuous mode for as long as this
// socket lives (a PACKET_MR_PROMISC membership, which the kernel counts and
// drops with the socket), so a sensor on a mirror port sees frames addressed
// to other hosts and leaves the interface as it found it.
func (r *ring) setPromisc() error {
	fd, ok := r.socketFD()
	if !ok {
		return errors.New("afpacket no longer exposes its socket")
	}
	mreq := unix.PacketMreq{Ifindex: int32(r.link.Index), Type: unix.PACKET_MR_PROMISC}
	return unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq)
}

// ringOptions says how rings are sized and grouped.
type ringOptions struct {
	blockSize, blocks int
	fanoutGroup       int // 0: no fanout
	promisc           bool
}

// openRing binds a ring to the interface, attaches the filter in the kernel
// and joins the fanout group, where member counts the interface's rings
// opened before this one. Call it inside the capture namespace.
func openRing(l link, f *filter, o ringOptions, member int, c *ifaceCounters) (*ring, error) {
	opts := []any{
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptBlockSize(o.blockSize),
		afpacket.OptNumBlocks(o.blocks),
		// afpacket only looks whether a block is ready, and never blocks in poll(2): the ring's
		// goroutine waits in Go's network poller instead (ringWaiter).
		afpacket.OptPollTimeout(0),
		// VLAN tags are put back by the capture loop (see vlan.go).
		afpacket.OptAddVLANHeader(false),
	}
	if l.Any {
		opts = append(opts, afpacket.SocketDgram) // bound to no interface: all of them (see cooked.go)
	} else {
		opts = append(opts, afpacket.OptInterface(l.Name))
	}
	tp, err := afpacket.NewTPacket(opts...)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("interface %q: AF_PACKET needs CAP_NET_RAW: %w", l.Name, err)
		}
		return nil, fmt.Errorf("interface %q: open AF_PACKET ring: %w", l.Name, err)
	}
	r := &ring{tp: tp, link: l, filter: f, attached: time.Now(), macoff: macOffset(l.LinkType), counters: c}
	fd, ok := r.socketFD()
	if !ok {
		tp.Close()
		return nil, errors.New("afpacket no longer exposes its socket")
	}
	mem, ok := ringMemory(tp)
	if !ok {
		tp.Close()
		return nil, errors.New("afpacket no longer exposes its ring")
	}
	if r.blocks, err = newBlockRing(fd, mem, o.blockSize, o.blocks); err != nil {
		tp.Close()
		return nil, fmt.Errorf("interface %q: %w", l.Name, err)
	}
	r.waiter = newRingWaiter(fd)
	if l.Any {
		// The filter runs in userspace on the cooked frame; there is no one
		// interface to make promiscuous (tcpdump -i any does not either).
		r.macoff = cookedMacOffset
		return r, r.joinFanout(o, member)
	}
	if err := tp.SetBPF(f.raw); err != nil {
		r.close()
		return nil, fmt.Errorf("interface %q: attach filter %q in the kernel: %w", l.Name, f.expr, err)
	}
	if o.promisc {
		if err := r.setPromisc(); err != nil {
			r.close()
			return nil, fmt.Errorf("interface %q: promiscuous mode: %w", l.Name, err)
		}
	}
	return r, r.joinFanout(o, member)
}

// joinFanout joins the ring to its fanout group, if any; on failure the ring
// is closed.
func (r *ring) joinFanout(o ringOptions, member int) error {
	if o.fanoutGroup == 0 {
		return nil
	}
	// Stamped before the join: surely also delivered to the group. A packet
	// stamped during the join is kept, as a possible duplicate beats a loss
	// nobody counted.
	joining := time.Now()
	if err := r.tp.SetFanout(afpacket.FanoutHash, uint16(o.fanoutGroup)); err != nil {
		r.close()
		return fmt.Errorf("interface %q: join fanout group %d: %w", r.link.Name, o.fanoutGroup, err)
	}
	if member > 0 {
		r.duplicateUntil = joining
	}
	return nil
}

// close closes the ring's socket.
func (r *ring) close() {
	r.waiter.close()
	r.blocks.close()
	r.tp.Close()
}

// ringWaiter is how a ring's goroutine waits for the kernel to hand it a block: in Go's network
// poller, on a duplicate of the socket, rather than in poll(2) as afpacket would. A goroutine blocked
// in a system call holds its P until the runtime's monitor takes it away, and each time it does the
// monitor goes back to waking every 20 µs for a while: with a ring that empties and waits many times a
// second, the monitor's wake-ups cost about a fifth of the sensor's CPU on the benchmark's VM, where
// each is a context switch. In the poller the goroutine simply parks. The socket signals readiness as each
// block is retired (full, or at its timeout), and on a pending error.
type ringWaiter struct {
	f     *os.File // nil: the poller does not take the socket, and wait calls poll(2) instead
	fd    int
	rc    syscall.RawConn
	calls int
	ready func(uintptr) bool
}

// ringWaitLimit bounds a wait, so a stopping sensor notices its context.
const ringWaitLimit = 200 * time.Millisecond

func newRingWaiter(fd int) *ringWaiter {
	w := &ringWaiter{fd: fd}
	// The first look is afpacket's own (nothing ready): wait for the socket; the second is after it.
	w.ready = func(uintptr) bool { w.calls++; return w.calls > 1 }
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return w
	}
	// Non-blocking, so os.NewFile hands it to the poller. The flag is the socket's, shared with
	// afpacket's descriptor, which only polls it and reads the ring's memory: neither changes.
	if unix.SetNonblock(dup, true) != nil {
		unix.Close(dup)
		return w
	}
	f := os.NewFile(uintptr(dup), "packet-ring")
	rc, err := f.SyscallConn()
	if err != nil || f.SetReadDeadline(time.Time{}) != nil { // no deadline: not in the poller
		f.Close()
		return w
	}
	w.f, w.rc = f, rc
	return w
}

// wait returns when the socket may have a block ready, at due (when the feeder's open batches must
// go; zero: nothing is due), or after ringWaitLimit.
func (w *ringWaiter) wait(due time.Time) {
	deadline := time.Now().Add(ringWaitLimit)
	if !due.IsZero() && due.Before(deadline) {
		deadline = due
	}
	if w.f == nil {
		fds := [1]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		_, _ = unix.Poll(fds[:], max(int(time.Until(deadline)/time.Millisecond), 1))
		return
	}
	_ = w.f.SetReadDeadline(deadline)
	w.calls = 0
	_ = w.rc.Read(w.ready)
}

func (w *ringWaiter) close() {
	if w.f != nil {
		w.f.Close()
	}
}

// stallLimit is how long a ring waits for the producer to free room before it sheds: under load
// Kafka answers within tens of milliseconds, so a producer silent for this long is in trouble, and
// the ring must be read again before it overflows.
const stallLimit = 500 * time.Millisecond

// capture reads the ring until ctx ends and hands each packet to the producer (see feeder).
func (r *ring) capture(ctx context.Context, p *publisher, node string, snaplen, sampleRate int, log *slog.Logger) {
	f := newFeeder(p, r.counters, node, r.link, snaplen, sampleRate)
	defer f.close()
	var lastErrLog time.Time
	// The context is looked at when the ring is empty and every ctxEvery packets, not per packet:
	// a look takes a lock.
	const ctxEvery = 4096
	for n := 0; n%ctxEvery != 0 || ctx.Err() == nil; n++ {
		frame, err := r.next()
		if err != nil {
			if time.Since(lastErrLog) > 10*time.Second {
				log.Warn("reading the capture ring failed, retrying", "interface", r.link.Name, "error", err)
				lastErrLog = time.Now()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch {
		case frame.data != nil:
			f.packet(frame)
		case frame.idle:
			// The ring is empty: batches whose linger is over go now, and the wait ends when the
			// next one's does.
			r.waiter.wait(f.w.Tick(time.Now()))
			n = -1 // the context is looked at next
		}
	}
}

// feeder turns one ring's packets into records. While the producer's buffer is full it waits for
// room instead of dropping, so a burst stays in the ring, where the kernel counts what overflows;
// only when Kafka frees nothing for stallLimit does it shed into BufferDrops, without waiting again
// until room comes back.
type feeder struct {
	w                   *batchproducer.Writer
	c                   *ifaceCounters
	node                string
	link                link
	snaplen, sampleRate int
	seq                 uint64
	stall               *time.Timer
	shedding            bool
}

func newFeeder(p *publisher, c *ifaceCounters, node string, l link, snaplen, sampleRate int) *feeder {
	stall := time.NewTimer(stallLimit)
	stall.Stop()
	return &feeder{
		w: p.prod.NewWriter(c), c: c, node: node, link: l, snaplen: snaplen, sampleRate: sampleRate, stall: stall,
	}
}

func (f *feeder) close() { f.w.Close() }

// packet counts, samples and produces one captured frame.
func (f *feeder) packet(frame captured) {
	c := f.c
	c.captured.Add(1)
	c.capturedBytes.Add(uint64(frame.origLen))
	f.seq++
	if f.sampleRate > 1 && f.seq%uint64(f.sampleRate) != 1 {
		c.sampledOut.Add(1)
		return
	}
	data := frame.data
	if len(data) > f.snaplen {
		data = data[:f.snaplen]
	}
	m := packetrecord.Meta{Timestamp: frame.ts, Node: f.node, Interface: f.link.Name, LinkType: f.link.LinkType, OrigLen: frame.origLen}
	// The record's Kafka time, and the linger's clock, is the capture time: a live capture's time is
	// the time of producing within milliseconds, and the kernel already read the clock for it.
	ok := f.w.Append(frame.ts, m, data)
	for !ok && !f.shedding {
		f.stall.Reset(stallLimit)
		if !f.w.Wait(f.stall.C) {
			f.shedding = true
			break
		}
		f.stall.Stop()
		ok = f.w.Append(frame.ts, m, data)
	}
	if !ok {
		c.bufferDrops.Add(1)
		return
	}
	f.shedding = false
}

// captured is one frame as it was on the wire; data is valid until the next
// call to next.
type captured struct {
	data    []byte
	ts      time.Time
	origLen int
	idle    bool // the ring had nothing: wait for it
}

// next reads one packet off the ring. A nil data with a nil error means
// nothing to publish this time: an empty ring (idle), or a packet that slipped in
// before the ring's filter or fanout group took effect. Errors are poll
// failures, such as the interface going down, worth retrying.
func (r *ring) next() (captured, error) {
	data, ts, length, ok, err := r.blocks.next()
	if err != nil {
		r.pollErrors.Add(1)
		return captured{}, r.takeSocketError()
	}
	if !ok {
		return captured{idle: true}, nil
	}
	if !ts.After(r.duplicateUntil) {
		return captured{}, nil
	}
	// Read the header while data is still the untouched ring slice.
	meta, ok := readRingMeta(data, r.macoff)
	if !ok {
		r.counters.metaUnread.Add(1)
	}
	if r.link.Any {
		if !ok {
			return captured{}, nil // no sockaddr_ll to frame it with (counted in metaUnread)
		}
		return r.cookedFrame(data, ts, length)
	}
	if r.link.Loopback && meta.pktType == unix.PACKET_OUTGOING {
		return captured{}, nil // seen again as it comes in
	}
	if !ts.After(r.attached) {
		// The kernel filters frames without their outer tag: so must we.
		n := r.filter.keep(data)
		if n == 0 {
			return captured{}, nil
		}
		data = data[:n]
	}
	f := captured{data: data, ts: ts, origLen: length}
	if meta.hasTag {
		r.tagged = withVLANTag(r.tagged, data, meta.tpid, meta.tci)
		f.data = r.tagged
		f.origLen += 4
	}
	return f, nil
}

// cookedFrame frames a packet captured on "any" with its Linux cooked v2
// header and runs the filter on it.
func (r *ring) cookedFrame(data []byte, ts time.Time, length int) (captured, error) {
	a := readLinkAddr(data, r.macoff)
	if a.pktType == unix.PACKET_OUTGOING && r.link.LoIndex != 0 && int(a.ifindex) == r.link.LoIndex {
		return captured{}, nil // seen again as it comes in
	}
	r.cooked = appendCooked(r.cooked, a, data)
	n := r.filter.keep(r.cooked)
	if n == 0 {
		return captured{}, nil
	}
	return captured{data: r.cooked[:n], ts: ts, origLen: length + sll2HeaderLen}, nil
}

// pollStats folds the socket's PACKET_STATISTICS drops into the counters.
// The kernel resets them on every read; afpacket accumulates.
func (r *ring) pollStats() error {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	_, v3, err := r.tp.SocketStats()
	if err != nil {
		return fmt.Errorf("interface %q: PACKET_STATISTICS: %w", r.link.Name, err)
	}
	drops := uint64(v3.Drops())
	if drops > r.lastKernelDrops {
		r.counters.kernelDrops.Add(drops - r.lastKernelDrops)
		r.lastKernelDrops = drops
	}
	return nil
}
