package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/store"
)

// RollupConfig sets the counters a pipeline keeps per window of packet time besides flows: traffic (the
// packets and bytes a sensor saw per Step) and edge rollups (what each pair of hosts exchanged per
// EdgeWindow, which query graph reads for long ranges).
//
// Counters are kept per Kafka partition, in packet time, and stored under (window, partition, the
// offset of the record that opened the counter), so a reader sums the rows of a window. A window stays
// open until the partition's newest packet is Lateness past its end; a packet later still opens a new
// counter (a new row) rather than overwrite the one stored. The open counters go into the partition's
// checkpoint with every commit: a consumer that resumes at a committed offset resumes them too, and
// rewrites the same rows with the same totals, so a re-delivery after a crash neither loses nor doubles.
type RollupConfig struct {
	Step       time.Duration // traffic window; 0: no traffic counters
	EdgeWindow time.Duration // edge rollup window; 0: no edge rollups
	TTL        time.Duration // of the rows (0: forever)
	Lateness   time.Duration // default 10s
}

func (c RollupConfig) on() bool { return c.Step > 0 || c.EdgeWindow > 0 }

// Validate rejects windows a reader could not line up.
func (c RollupConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--traffic-step", c.Step}, {"--edge-window", c.EdgeWindow}} {
		if d.v < 0 || (d.v > 0 && (d.v < time.Millisecond || d.v%time.Millisecond != 0 || d.v > store.RollupBucket || store.RollupBucket%d.v != 0)) {
			return fmt.Errorf("%s %s: must be 0 (off) or a whole number of milliseconds that divides an hour (1s, 10s, 1m...)", d.name, d.v)
		}
	}
	if c.Lateness < 0 {
		return fmt.Errorf("--rollup-lateness %s: must not be negative", c.Lateness)
	}
	return nil
}

// rollupTopic is the checkpoint "topic" of a partition's open counters (no Kafka topic has a colon).
func rollupTopic(topic string) string { return "rollups:" + topic }

type trafficAcc struct {
	First  int64
	Dirty  bool // changed since the last take
	PB     store.PB
	Proto  [256]store.PB
	NonIP  store.PB
	In     store.PB
	Out    store.PB
	Intern store.PB
	Filt   uint64
	DecErr uint64
}

type edgeKey struct {
	Start int64
	A, B  netip.Addr
}

// edgeKey4 is an IPv4 pair's key, which hashes faster than two netip.Addr.
type edgeKey4 struct {
	start int64
	ab    uint64 // a<<32 | b
}

type edgeAcc struct {
	First   int64
	Dirty   bool // changed since the last take
	Packets uint64
	Bytes   uint64
	Flows   uint64
}

// rollups are the open counters of one Kafka partition. Times are Unix nanoseconds of packet time.
type rollups struct {
	step, width, late int64
	clock             int64
	traffic           map[int64]*trafficAcc
	edges             map[edgeKey]*edgeAcc
	edges4            map[edgeKey4]*edgeAcc // the IPv4 pairs of edges, the same counters
	// Counters closed (their window ended Lateness ago) and not yet stored: written at the next
	// checkpoint, before its commit.
	doneTraffic []store.TrafficRow
	doneEdges   []store.EdgeRow
	lastT       *trafficAcc
	lastTStart  int64
	lastEvictT  int64
	lastEvictE  int64
	nextT       int64 // the clock at which advance looks for traffic windows to close next
	nextE       int64 // the same for edge windows
	lateOpened  int   // counters opened for closed windows since they were last closed
}

func newRollups(c RollupConfig) *rollups {
	late := c.Lateness
	if late <= 0 {
		late = 10 * time.Second
	}
	return &rollups{step: int64(c.Step), width: int64(c.EdgeWindow), late: int64(late),
		traffic: map[int64]*trafficAcc{}, edges: map[edgeKey]*edgeAcc{}, edges4: map[edgeKey4]*edgeAcc{}}
}

// floor is the start of the window of width w holding t (t may be before 1970).
func floor(t, w int64) int64 {
	r := t % w
	if r < 0 {
		r += w
	}
	return t - r
}

// advance moves the clock to ts and closes the windows that ended Lateness before it. Closing runs only
// when the clock enters a new window, so it depends on the records alone, never on when commits happen.
func (r *rollups) advance(ts int64, sensor string, part int32) {
	if ts <= r.clock {
		return
	}
	r.clock = ts
	if r.step > 0 && ts >= r.nextT && floor(ts, r.step) != r.lastEvictT {
		r.lastEvictT = floor(ts, r.step)
		r.nextT = r.lastEvictT + r.step
		r.closeTraffic(sensor, part)
	}
	if r.width > 0 && ts >= r.nextE && floor(ts, r.width) != r.lastEvictE {
		r.lastEvictE = floor(ts, r.width)
		r.nextE = r.lastEvictE + r.width
		r.closeEdges(sensor, part)
	}
}

// closeTraffic and closeEdges move the counters whose window ended Lateness before the clock to the
// rows waiting for the next checkpoint.
func (r *rollups) closeTraffic(sensor string, part int32) {
	for start, a := range r.traffic {
		if start+r.step+r.late <= r.clock {
			r.doneTraffic = append(r.doneTraffic, a.row(sensor, part, start, r.step))
			delete(r.traffic, start)
			if r.lastT == a {
				r.lastT = nil
			}
		}
	}
}

func (r *rollups) closeEdges(sensor string, part int32) {
	for k, a := range r.edges {
		if k.Start+r.width+r.late <= r.clock {
			r.doneEdges = append(r.doneEdges, a.row(sensor, part, k, r.width))
			r.forget(k)
		}
	}
}

// maxLate is how many counters of windows closed already (late packets: a replay going back in time,
// a looped capture) may open before they are closed too. The clock does not move for those, so
// without it they would pile up for as long as it stays behind. Counted per record, so deterministic.
const maxLate = 1024

// opened notes a new counter; one of a closed window may trigger closing all such.
func (r *rollups) opened(start, width int64, sensor string, part int32) {
	if start+width+r.late > r.clock {
		return
	}
	if r.lateOpened++; r.lateOpened >= maxLate {
		r.lateOpened = 0
		r.closeTraffic(sensor, part)
		r.closeEdges(sensor, part)
	}
}

// packet counts a record in its traffic window and returns the counter (nil when traffic is off).
func (r *rollups) packet(offset int64, ts time.Time, origLen int, sensor string, part int32) *trafficAcc {
	t := ts.UnixNano()
	r.advance(t, sensor, part)
	if r.step <= 0 {
		return nil
	}
	a := r.lastT
	if a == nil || t < r.lastTStart || t >= r.lastTStart+r.step {
		start := floor(t, r.step)
		if a = r.traffic[start]; a == nil {
			r.opened(start, r.step, sensor, part)
			a = &trafficAcc{First: offset}
			r.traffic[start] = a
		}
		r.lastT, r.lastTStart = a, start
	}
	a.Dirty = true
	a.PB.Add(uint64(max(origLen, 0)))
	return a
}

// local is whether a is a private, loopback or link-local address.
func local(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0] == 10 || b[0] == 127 || (b[0] == 172 && b[1]&0xf0 == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254)
	}
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// classify splits a decoded packet by its outer IP header's protocol and direction.
func (a *trafficAcc) classify(p *decode.Packet, origLen int) {
	n := uint64(max(origLen, 0))
	h, ok := p.Outer()
	if !ok {
		a.NonIP.Add(n)
		return
	}
	a.Proto[h.Proto].Add(n)
	src, dst := local(h.Src.Unmap()), local(h.Dst.Unmap())
	switch {
	case src && dst:
		a.Intern.Add(n)
	case src:
		a.Out.Add(n)
	case dst:
		a.In.Add(n)
	}
}

// edge counts a packet that passed the filters on its pair's edge, by its inner IP header as flows
// count it (non-first fragments, which no flow gets, are left out too); newFlow says the flow table
// opened a flow with it.
func (r *rollups) edge(offset int64, p *decode.Packet, newFlow bool, sensor string, part int32) {
	if r.width <= 0 {
		return
	}
	h, ok := p.Inner()
	if !ok || (h.Fragment && h.FragOffset != 0) {
		return
	}
	a, b := h.Src.Unmap(), h.Dst.Unmap()
	if b.Less(a) {
		a, b = b, a
	}
	start := floor(p.Timestamp.UnixNano(), r.width)
	var e *edgeAcc
	if a.Is4() && b.Is4() {
		k4 := key4(edgeKey{start, a, b})
		if e = r.edges4[k4]; e == nil {
			r.opened(start, r.width, sensor, part)
			e = &edgeAcc{First: offset}
			r.edges4[k4] = e
			r.edges[edgeKey{start, a, b}] = e
		}
	} else {
		k := edgeKey{start, a, b}
		if e = r.edges[k]; e == nil {
			r.opened(start, r.width, sensor, part)
			e = &edgeAcc{First: offset}
			r.edges[k] = e
		}
	}
	e.Dirty = true
	e.Packets++
	e.Bytes += uint64(max(h.TotalLen, 0))
	if newFlow {
		e.Flows++
	}
}

// forget drops an edge counter from both maps.
func (r *rollups) forget(k edgeKey) {
	delete(r.edges, k)
	if k.A.Is4() && k.B.Is4() {
		delete(r.edges4, key4(k))
	}
}

// key4 is the edgeKey4 of an IPv4 pair's key.
func key4(k edgeKey) edgeKey4 {
	a4, b4 := k.A.As4(), k.B.As4()
	return edgeKey4{k.Start, uint64(a4[0])<<56 | uint64(a4[1])<<48 | uint64(a4[2])<<40 | uint64(a4[3])<<32 |
		uint64(b4[0])<<24 | uint64(b4[1])<<16 | uint64(b4[2])<<8 | uint64(b4[3])}
}

func (a *trafficAcc) row(sensor string, part int32, start, step int64) store.TrafficRow {
	c := store.TrafficCounts{PB: a.PB, In: a.In, Out: a.Out, Internal: a.Intern, Filtered: a.Filt, DecodeErrors: a.DecErr, Proto: map[int]store.PB{}}
	for i, v := range a.Proto {
		if v.Packets > 0 {
			c.Proto[i] = v
		}
	}
	if a.NonIP.Packets > 0 {
		c.Proto[store.NonIP] = a.NonIP
	}
	return store.TrafficRow{Sensor: sensor, Start: time.Unix(0, start).UTC(), Step: time.Duration(step), Partition: part, FirstOffset: a.First, TrafficCounts: c}
}

func (a *edgeAcc) row(sensor string, part int32, k edgeKey, width int64) store.EdgeRow {
	return store.EdgeRow{Sensor: sensor, Start: time.Unix(0, k.Start).UTC(), Width: time.Duration(width), A: k.A, B: k.B,
		Partition: part, FirstOffset: a.First, Packets: a.Packets, Bytes: a.Bytes, Flows: a.Flows}
}

// take returns the rows to store now: the closed counters, the traffic counters changed since the last
// take (so the curve is live), and the edge counters changed whose window ended, or all changed ones
// when all is set (the partition is quiet, leaving, or the pipeline stops).
func (r *rollups) take(sensor string, part int32, all bool) ([]store.TrafficRow, []store.EdgeRow) {
	tr, er := r.doneTraffic, r.doneEdges
	r.doneTraffic, r.doneEdges = nil, nil
	for start, a := range r.traffic {
		if a.Dirty {
			a.Dirty = false
			tr = append(tr, a.row(sensor, part, start, r.step))
		}
	}
	for k, a := range r.edges {
		if a.Dirty && (all || k.Start+r.width <= r.clock) {
			a.Dirty = false
			er = append(er, a.row(sensor, part, k, r.width))
		}
	}
	return tr, er
}

// The checkpointed form of a partition's open counters: a version byte, then varints. A checkpoint is
// written with every commit, so it is compact (about 30 bytes an edge counter) and quick to make.
const rollupStateVersion = 1

func (r *rollups) marshal() ([]byte, error) {
	b := make([]byte, 0, 64+len(r.traffic)*64+len(r.edges)*32)
	b = append(b, rollupStateVersion)
	for _, v := range []int64{r.step, r.width, r.clock, r.lastEvictT, r.lastEvictE} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(r.traffic)))
	for start, a := range r.traffic {
		b = binary.AppendVarint(b, start)
		b = binary.AppendVarint(b, a.First)
		for _, c := range []store.PB{a.PB, a.NonIP, a.In, a.Out, a.Intern} {
			b = binary.AppendUvarint(binary.AppendUvarint(b, c.Packets), c.Bytes)
		}
		b = binary.AppendUvarint(binary.AppendUvarint(b, a.Filt), a.DecErr)
		n := 0
		for _, c := range a.Proto {
			if c.Packets > 0 {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		for i, c := range a.Proto {
			if c.Packets > 0 {
				b = append(b, byte(i))
				b = binary.AppendUvarint(binary.AppendUvarint(b, c.Packets), c.Bytes)
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.edges)))
	for k, a := range r.edges {
		b = binary.AppendVarint(b, k.Start)
		for _, ip := range []netip.Addr{k.A, k.B} {
			raw := ip.AsSlice()
			b = append(append(b, byte(len(raw))), raw...)
		}
		b = binary.AppendVarint(b, a.First)
		b = binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(b, a.Packets), a.Bytes), a.Flows)
	}
	return b, nil
}

// stateReader reads the varints of a checkpoint, keeping the first error.
type stateReader struct {
	b   []byte
	err error
}

func (d *stateReader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("rollup checkpoint: %s", what)
	}
}

func (d *stateReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateReader) pb() store.PB { return store.PB{Packets: d.uvarint(), Bytes: d.uvarint()} }

func (d *stateReader) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *stateReader) addr() netip.Addr {
	n := int(d.byte())
	if (n != 4 && n != 16) || len(d.b) < n {
		d.fail("bad address")
		d.b = nil
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.b[:n])
	d.b = d.b[n:]
	return a
}

// count reads a number of entries, bounded by what the bytes left could hold.
func (d *stateReader) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("count larger than the checkpoint")
		d.b = nil
		return 0
	}
	return int(n)
}

// restoreRollups loads checkpointed counters. Counters of a different width (the configuration changed)
// are dropped: they were stored up to the commit already. Every loaded counter is marked changed, so
// the rows a crashed consumer wrote past the commit are overwritten with the replayed totals. A
// checkpoint that cannot be read gives empty counters and an error to log.
func restoreRollups(c RollupConfig, state []byte) (*rollups, error) {
	r := newRollups(c)
	if state == nil {
		return r, nil
	}
	if len(state) == 0 || state[0] != rollupStateVersion {
		return r, fmt.Errorf("rollup checkpoint: not of version %d", rollupStateVersion)
	}
	d := &stateReader{b: state[1:]}
	step, width := d.varint(), d.varint()
	clock, lastT, lastE := d.varint(), d.varint(), d.varint()
	traffic := map[int64]*trafficAcc{}
	for range d.count(15) {
		start := d.varint()
		a := &trafficAcc{First: d.varint(), Dirty: true}
		a.PB, a.NonIP, a.In, a.Out, a.Intern = d.pb(), d.pb(), d.pb(), d.pb(), d.pb()
		a.Filt, a.DecErr = d.uvarint(), d.uvarint()
		for range d.count(3) {
			i := d.byte()
			a.Proto[i] = d.pb()
		}
		traffic[start] = a
	}
	edges := map[edgeKey]*edgeAcc{}
	for range d.count(14) {
		k := edgeKey{Start: d.varint(), A: d.addr(), B: d.addr()}
		edges[k] = &edgeAcc{First: d.varint(), Dirty: true, Packets: d.uvarint(), Bytes: d.uvarint(), Flows: d.uvarint()}
	}
	if d.err != nil {
		return newRollups(c), d.err
	}
	r.clock, r.lastEvictT, r.lastEvictE = clock, lastT, lastE
	if step == r.step {
		r.traffic = traffic
	}
	if width == r.width {
		r.edges = edges
		for k, a := range edges {
			if k.A.Is4() && k.B.Is4() {
				r.edges4[key4(k)] = a
			}
		}
	}
	return r, nil
}

// restoreRollups gives ps the counters checkpointed for offset, or empty ones.
func (p *Pipeline) restoreRollups(ctx context.Context, ps *partition, offset int64) error {
	var state []byte
	err := p.retry(ctx, "read rollup checkpoint", func() error {
		s, found, err := p.deps.Reader.Checkpoint(ctx, p.cfg.Group, rollupTopic(p.cfg.Topic), ps.id, offset)
		if err == nil && !found {
			s = nil
		}
		state = s
		return err
	})
	if err != nil {
		return err
	}
	r, err := restoreRollups(p.cfg.Rollups, state)
	if err != nil {
		p.log.Error("rollup checkpoint unreadable, starting with empty counters", "partition", ps.id, "offset", offset, "err", err)
	}
	ps.roll, ps.rollAt = r, offset
	return nil
}

// storeRollups starts, in the background with the packet blocks, the writes of the rows ps's counters
// have ready; the checkpoint waits for them before it commits.
func (p *Pipeline) storeRollups(ctx context.Context, ps *partition, all bool) error {
	if ps.roll == nil {
		return nil
	}
	tr, er := ps.roll.take(p.cfg.Sensor, ps.id, all)
	if len(tr) == 0 && len(er) == 0 {
		return nil
	}
	return p.writes.start(ctx, func(ctx context.Context) error {
		if err := p.deps.Writer.WriteRollups(ctx, tr, er, p.cfg.Rollups.TTL); err != nil {
			return err
		}
		p.c.TrafficRowsWritten.Add(uint64(len(tr)))
		p.c.EdgeRowsWritten.Add(uint64(len(er)))
		return nil
	})
}
