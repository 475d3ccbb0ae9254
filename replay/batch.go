package replay

import (
	"context"
	"errors"
	"io"
	"time"
)

// BatchTarget is a Target that can take many frames in one call, which an
// interface turns into one system call (sendmmsg) instead of one per frame.
// SendBatch sends ps in order before it returns; each packet that could not
// be sent is reported to failed, the others are counted in sent and
// sentBytes. Data of ps is only valid until SendBatch returns.
type BatchTarget interface {
	Target
	SendBatch(ps []Packet, failed func(size int, err error)) (sent, sentBytes int)
}

const (
	// batchPackets is the most frames handed to a target at once. Per batch the
	// sender pays a hand-over from the reader's goroutine (a futex wake-up when
	// one of them had to wait) and one system call; at 256 that is 1-2% of
	// what the frames cost the kernel on a veth, and in three interleaved runs
	// onto one it sent 8-32% more packets/s than batches of 64.
	batchPackets = 256
	// batchBytes is the frame space of one batch: 256 frames of up to 2 KiB,
	// and any single record (pcapfile.MaxRecord) fits an empty batch.
	batchBytes = 512 << 10
	// batchesInFlight lets the reader fill batches on one core while the
	// sender empties others on the other.
	batchesInFlight = 4
)

// batch is frames copied out of the capture, with when each is due: the
// reader's Data is valid only until its next record, a batch keeps its frames
// until they are sent.
type batch struct {
	buf     []byte
	pkts    []Packet
	due     []time.Duration // offset from the start of the run; unused at top speed
	passEnd bool            // a pass over the capture ended with the last of pkts
	err     error           // reading stopped here, after pkts
}

func newBatch() *batch {
	return &batch{buf: make([]byte, 0, batchBytes), pkts: make([]Packet, 0, batchPackets), due: make([]time.Duration, 0, batchPackets)}
}

// add copies p into the batch; false means the batch is full and p was not added.
func (b *batch) add(p Packet, due time.Duration) bool {
	if len(b.pkts) == batchPackets || (len(b.pkts) > 0 && len(p.Data) > cap(b.buf)-len(b.buf)) {
		return false
	}
	if len(p.Data) > cap(b.buf)-len(b.buf) {
		b.buf = make([]byte, 0, len(p.Data)) // a frame larger than any record a reader returns
	}
	off := len(b.buf)
	b.buf = append(b.buf, p.Data...)
	p.Data = b.buf[off:len(b.buf):len(b.buf)]
	b.pkts = append(b.pkts, p)
	b.due = append(b.due, due)
	return true
}

func (b *batch) reset() {
	clear(b.pkts) // drop timestamps' locations and frame slices
	b.buf, b.pkts, b.due = b.buf[:0], b.pkts[:0], b.due[:0]
	b.passEnd, b.err = false, nil
}

// errStopped ends the reader when the sender has given up (cancelled).
var errStopped = errors.New("replay stopped")

// feeder reads the capture, computes when each packet is due and fills
// batches, in a goroutine of its own so that reading and pacing arithmetic
// overlap with sending.
type feeder struct {
	cfg   *Config
	sched *schedule
	paced bool
	n     uint64 // packets read for sending, across passes
	cur   *batch
	full  chan<- *batch
	free  <-chan *batch
	stop  <-chan struct{}
}

// run reads every pass and closes full at the end; a read error travels in
// the last batch, after the packets read before it.
func (f *feeder) run() {
	defer close(f.full)
	for loop := 0; f.cfg.Loops == 0 || loop < f.cfg.Loops; loop++ {
		limited, err := f.pass()
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil || limited {
			f.cur.err = err
			f.ship()
			return
		}
		f.cur.passEnd = true
		if !f.ship() {
			return
		}
		f.sched.nextLoop()
	}
}

// pass reads one pass over the capture into batches; limited reports that
// the run's packet limit was reached.
func (f *feeder) pass() (limited bool, err error) {
	src, err := f.cfg.Open()
	if err != nil {
		return false, err
	}
	defer src.Close()
	for {
		if f.cfg.Limit > 0 && f.n >= f.cfg.Limit {
			return true, nil
		}
		p, err := src.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var due time.Duration
		if f.paced {
			due = f.sched.next(p.Timestamp, len(p.Data))
		}
		if !f.cur.add(p, due) {
			if !f.ship() {
				return false, errStopped
			}
			f.cur.add(p, due) // an empty batch takes any frame
		}
		f.n++
	}
}

// ship hands the current batch to the sender and takes an empty one; false
// means the sender stopped.
func (f *feeder) ship() bool {
	select {
	case f.full <- f.cur:
	case <-f.stop:
		return false
	}
	select {
	case f.cur = <-f.free:
		return true
	case <-f.stop:
		return false
	}
}

// sendBatches is the sending side: each batch's packets go to the target as
// soon as they are due, those already due together.
func (r *Replayer) sendBatches(ctx context.Context, start time.Time, full <-chan *batch, free chan<- *batch) error {
	w := newWaiter()
	for b := range full {
		if err := r.sendDue(ctx, start, b, w); err != nil {
			return err
		}
		err, passEnd := b.err, b.passEnd
		b.reset()
		free <- b // free holds every batch: never blocks
		if err != nil {
			return err
		}
		if passEnd {
			r.loops.Add(1)
		}
	}
	return nil
}

// sendDue sends a batch in runs of packets whose time has come: at top speed
// the whole batch at once; paced, it waits for the first packet not yet
// sent, then sends it with every later one already due by then.
func (r *Replayer) sendDue(ctx context.Context, start time.Time, b *batch, w *waiter) error {
	paced := r.cfg.Pace.Mode != TopSpeed
	for i := 0; i < len(b.pkts); {
		j := len(b.pkts)
		if paced {
			if err := w.until(ctx, start.Add(b.due[i])); err != nil {
				return err
			}
			now := time.Since(start)
			for j = i + 1; j < len(b.pkts) && b.due[j] <= now; j++ {
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		r.hand(b.pkts[i:j])
		i = j
	}
	return nil
}

// hand gives packets to the target and counts them.
func (r *Replayer) hand(ps []Packet) {
	for i := range ps {
		if ps[i].Truncated() {
			r.truncated.Add(1)
		}
	}
	if bt, ok := r.cfg.Target.(BatchTarget); ok {
		sent, bytes := bt.SendBatch(ps, r.done)
		r.sent.Add(uint64(sent))
		r.sentBytes.Add(uint64(bytes))
		return
	}
	if st, ok := r.cfg.Target.(StampedTarget); ok {
		// These packets are due together: one time for all of them.
		now := time.Now()
		for _, p := range ps {
			now = st.SendAt(p, r.done, now)
		}
		return
	}
	for _, p := range ps {
		r.cfg.Target.Send(p, r.done)
	}
}

// sendDirect is top speed to a target that takes one packet at a time (a Topic, which copies what
// it keeps into the record): each packet goes from the reader to the target at once, in this
// goroutine. The feeder's batches are for pacing and for targets that send many frames in one
// call; here they would only add a copy of every frame and a hand-over between two cores.
func (r *Replayer) sendDirect(ctx context.Context) error {
	var n uint64 // packets read for sending, across passes
	for loop := 0; r.cfg.Loops == 0 || loop < r.cfg.Loops; loop++ {
		limited, err := r.directPass(ctx, &n)
		if err != nil || limited {
			return err
		}
		r.loops.Add(1)
	}
	return nil
}

// directPass sends one pass over the capture; limited reports that the run's packet limit was
// reached.
func (r *Replayer) directPass(ctx context.Context, n *uint64) (limited bool, err error) {
	src, err := r.cfg.Open()
	if err != nil {
		return false, err
	}
	defer src.Close()
	st, stamped := r.cfg.Target.(StampedTarget)
	now := time.Now()
	for {
		if r.cfg.Limit > 0 && *n >= r.cfg.Limit {
			return true, nil
		}
		if *n%stampPackets == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			now = time.Now()
		}
		p, err := src.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if p.Truncated() {
			r.truncated.Add(1)
		}
		if stamped {
			now = st.SendAt(p, r.done, now)
		} else {
			r.cfg.Target.Send(p, r.done)
		}
		*n++
	}
}

// stampPackets is how many packets in a row at top speed share one reading of the clock (and one
// look at the context): at a million packets a second, 64 µs.
const stampPackets = 64
