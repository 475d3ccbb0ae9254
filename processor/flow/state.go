package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"capfleet.dev/capfleet/processor/decode"
)

// StateVersion leads every saved state. A change to what AppendState writes takes a new version, so
// that a state saved by another build is refused with an error that says so rather than misread.
// Versions up to 4 were the pipeline's own flow table's checkpoints; version 5 states (before Zeek's
// TCP tracking) still restore.
const StateVersion = 6

const stateVersion5 = 5

// StateVersionCIC is a version 6 state followed by the CICFlowMeter features of each flow, in the same
// order (a presence byte, then their fields as cicFlow.visit lists them): what a table with
// Features writes. A table without them reads it and drops the features; a table with them that
// restores a version 6 state starts each open flow's features at its next packet.
const StateVersionCIC = 7

// Per-flow flag bits of the state.
const (
	stateV4 uint8 = 1 << iota
	stateOrigIsB
	stateFlipped
	stateDirty
	stateTCPIdle // version 6
	stateExt     // version 6: the flow's ext follows its endpoints
	stateOneWay  // version 6
	stateFlagsV5 = stateV4 | stateOrigIsB | stateFlipped | stateDirty
	stateFlagsV6 = stateFlagsV5 | stateTCPIdle | stateExt | stateOneWay
)

// AppendState appends the open flows to b, so that a table made with RestoreState carries on as
// this one would. The form: the version byte, the flow count, the table's clock, then each flow
// in LRU order per timeout class (which restoring rebuilds the eviction order from), mostly as
// varints: about 70 bytes for an IPv4 UDP flow.
func (t *Table) AppendState(b []byte) []byte {
	v := uint8(StateVersion)
	if t.cic != nil {
		v = StateVersionCIC
	}
	b = append(b, v)
	b = binary.AppendUvarint(b, uint64(len(t.flows)))
	b = binary.AppendVarint(b, t.clock)
	for c := range t.lru {
		for f := t.lru[c].head; f != nil; f = f.lruNext {
			b = f.appendState(b)
		}
	}
	if t.cic != nil {
		for c := range t.lru {
			for f := t.lru[c].head; f != nil; f = f.lruNext {
				b = appendCICState(b, t.cic[f])
			}
		}
	}
	return b
}

// appendCICState appends a flow's features, or their absence (a flow restored from a state without them).
func appendCICState(b []byte, c *cicFlow) []byte {
	if c == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	c.visit(func(u *uint64) { b = binary.AppendUvarint(b, *u) },
		func(i *int64) { b = binary.AppendVarint(b, *i) },
		func(f *float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*f)) })
	return b
}

// cicState reads what appendCICState wrote; nil for a flow without features.
func (r *stateReader) cicState() *cicFlow {
	if r.byte1("features presence") == 0 {
		return nil
	}
	c := new(cicFlow)
	c.visit(func(u *uint64) { *u = r.uvarint("feature") },
		func(i *int64) { *i = r.varint("feature") },
		func(f *float64) { *f = math.Float64frombits(binary.LittleEndian.Uint64(r.next(8, "feature"))) })
	if r.err == nil && c.fwd > 1 {
		r.fail("features: forward side out of range")
	}
	return c
}

func (e *entry) appendState(b []byte) []byte {
	l := &e.lookup
	b = append(b, e.stateFlags(), l.proto)
	if l.v4 {
		b = append(b, l.a[12:]...)
		b = append(b, l.b[12:]...)
	} else {
		b = append(b, l.a[:]...)
		b = append(b, l.b[:]...)
	}
	for _, v := range [...]uint16{l.aPort, l.bPort, l.vlan[0], l.vlan[1]} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = binary.AppendVarint(b, e.first)
	b = binary.AppendUvarint(b, uint64(e.last-e.first))
	b = append(b, e.historyLen)
	for i := range int(e.historyLen) {
		b = append(b, e.historyAt(i))
	}
	b = binary.AppendUvarint(b, uint64(e.historySet))
	b = e.ep[0].appendState(b)
	b = e.ep[1].appendState(b)
	if x := e.ext; x != nil {
		for i := range x.tcp {
			te := &x.tcp[i]
			for _, v := range [...]uint64{te.ack, uint64(te.histSYN), uint64(te.histFIN), uint64(te.histRST),
				uint64(te.chk), uint64(te.rxmit), uint64(te.win0), uint64(te.gap)} {
				b = binary.AppendUvarint(b, v)
			}
			b = append(b, byte(te.prevState))
		}
		// Times relative to the first packet; 0 stays "not pending".
		for _, at := range [...]int64{x.attemptAt, x.closeAt, x.resetAt, x.last} {
			if at != 0 {
				at -= e.first - 1
			}
			b = binary.AppendVarint(b, at)
		}
		tk := &x.tunnel
		b = append(b, flagIf(x.active, 1)|flagIf(tk.v4, 2), byte(tk.typ), tk.changes)
		if tk.typ != decode.TunnelNone {
			if tk.v4 {
				b = append(b, tk.src[12:]...)
				b = append(b, tk.dst[12:]...)
			} else {
				b = append(b, tk.src[:]...)
				b = append(b, tk.dst[:]...)
			}
			b = binary.AppendUvarint(b, uint64(tk.srcPort))
			b = binary.AppendUvarint(b, uint64(tk.dstPort))
		}
		b = binary.AppendUvarint(b, uint64(x.tunnelID))
	}
	return b
}

func (e *entry) stateFlags() uint8 {
	return flagIf(e.lookup.v4, stateV4) | flagIf(e.origIsB, stateOrigIsB) | flagIf(e.flags&flipped != 0, stateFlipped) |
		flagIf(e.dirty, stateDirty) | flagIf(e.flags&tcpIdle != 0, stateTCPIdle) | flagIf(e.ext != nil, stateExt) |
		flagIf(e.flags&oneWay != 0, stateOneWay)
}

func flagIf(on bool, flag uint8) uint8 {
	if on {
		return flag
	}
	return 0
}

func (ep *Endpoint) appendState(b []byte) []byte {
	for _, v := range [...]uint64{ep.Pkts, ep.IPBytes, ep.count, uint64(ep.startSeq), uint64(ep.Flags)} {
		b = binary.AppendUvarint(b, v)
	}
	return append(b, byte(ep.state), ep.bits)
}

// RestoreState fills an empty table with the flows of a state from AppendState (this version's
// or version 5's). Flows beyond MaxFlows (a smaller table than the one saved) are evicted, least
// recently active first. A state that is cut short, corrupt or of another version is an error,
// and leaves the table empty.
func (t *Table) RestoreState(b []byte) error {
	if len(t.flows) != 0 {
		return errors.New("flow state: restoring into a table that holds flows")
	}
	if err := t.restore(b); err != nil {
		t.flows, t.lru, t.timers, t.clock = make(map[lookupKey]*entry), [numClasses]lruList{}, nil, 0
		if t.cic != nil {
			t.cic = make(map[*entry]*cicFlow)
		}
		return err
	}
	t.nextExpire = 0 // the next packet works out what is due
	for len(t.flows) > t.cfg.MaxFlows {
		t.end(t.leastRecent(), EndEvicted)
	}
	return nil
}

func (t *Table) restore(b []byte) error {
	r := &stateReader{b: b}
	version := r.byte1("version")
	if r.err == nil && version != StateVersion && version != stateVersion5 && version != StateVersionCIC {
		return fmt.Errorf("flow state version %d, this build reads versions %d, %d and %d", version, stateVersion5, StateVersion, StateVersionCIC)
	}
	r.version = version
	if version == StateVersionCIC {
		r.version = StateVersion // the flows are as in version 6
	}
	n := r.uvarint("flow count")
	if r.err == nil && n > uint64(len(r.b)) { // every flow takes many bytes: a count beyond the size is corrupt
		r.fail("flow count beyond the data")
	}
	t.clock = r.varint("clock")
	var seenDirty [numClasses]bool
	var order []*entry // for the features that follow
	for i := uint64(0); i < n && r.err == nil; i++ {
		e := r.entry(t)
		if r.err != nil {
			break
		}
		if version == StateVersionCIC {
			order = append(order, e)
		}
		if _, dup := t.flows[e.lookup]; dup {
			return errors.New("flow state: a flow twice")
		}
		e.flags |= classOf(e.lookup.proto, e.flags&tcpIdle != 0) << classShift
		// Dirty relies on the changed flows being the LRU lists' tails.
		c := e.class()
		if seenDirty[c] && !e.dirty {
			return errors.New("flow state: an unchanged flow after a changed one")
		}
		seenDirty[c] = e.dirty
		t.flows[e.lookup] = e
		t.touch(e)
		if e.ext != nil {
			e.ext.heapIdx = -1
			t.reschedule(e)
		}
	}
	for _, e := range order {
		c := r.cicState()
		if r.err != nil {
			break
		}
		if c != nil && t.cic != nil {
			t.cic[e] = c
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last flow", len(r.b)))
	}
	return r.err
}

// stateReader reads a state; the first error sticks and later reads return zeros.
type stateReader struct {
	b       []byte
	err     error
	version uint8
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = errors.New("flow state: " + what)
	}
}

func (r *stateReader) next(n int, what string) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(what + " cut short")
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *stateReader) byte1(what string) byte { return r.next(1, what)[0] }

func (r *stateReader) uvarint(what string) uint64 { return readVarint(r, what, binary.Uvarint) }
func (r *stateReader) varint(what string) int64   { return readVarint(r, what, binary.Varint) }

// readVarint reads one varint with read (binary.Uvarint or binary.Varint).
func readVarint[V uint64 | int64](r *stateReader, what string, read func([]byte) (V, int)) V {
	v, n := read(r.b)
	if r.err == nil && n <= 0 {
		r.fail("bad " + what)
	}
	if r.err != nil {
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) u16(what string) uint16 {
	v := r.uvarint(what)
	if v > 0xffff {
		r.fail(what + " out of range")
	}
	return uint16(v)
}

func (r *stateReader) u32(what string) uint32 {
	v := r.uvarint(what)
	if v > 0xffffffff {
		r.fail(what + " out of range")
	}
	return uint32(v)
}

func (r *stateReader) entry(t *Table) *entry {
	e := &entry{}
	fl := r.byte1("flags")
	all := stateFlagsV6
	if r.version == stateVersion5 {
		all = stateFlagsV5
	}
	if fl&^all != 0 {
		r.fail("unknown flow flags")
	}
	l := &e.lookup
	l.v4, e.origIsB, e.dirty = fl&stateV4 != 0, fl&stateOrigIsB != 0, fl&stateDirty != 0
	e.flags = flagIf(fl&stateFlipped != 0, flipped) | flagIf(fl&stateTCPIdle != 0, tcpIdle) | flagIf(fl&stateOneWay != 0, oneWay)
	l.proto = r.byte1("protocol")
	l.a, l.b = r.addr(l.v4), r.addr(l.v4)
	l.aPort, l.bPort = r.u16("port"), r.u16("port")
	l.vlan = [2]uint16{r.u16("vlan"), r.u16("vlan")}
	e.first = r.varint("first packet time")
	e.last = e.first + int64(r.uvarint("duration"))
	if r.version == stateVersion5 {
		r.entryV5(t, e)
		return e
	}
	hasExt := fl&stateExt != 0
	if hasExt {
		t.giveExt(e)
	}
	r.history(e)
	set := r.uvarint("history flags")
	if set > 0xffff {
		r.fail("history flags out of range")
	}
	e.historySet = uint16(set)
	r.endpoint(&e.ep[0])
	r.endpoint(&e.ep[1])
	if !hasExt {
		return e
	}
	x := e.ext
	for i := range x.tcp {
		te := &x.tcp[i]
		te.ack = r.uvarint("acknowledgement")
		te.histSYN, te.histFIN, te.histRST = r.u32("history sequence"), r.u32("history sequence"), r.u32("history sequence")
		te.chk, te.rxmit, te.win0, te.gap = r.u32("history count"), r.u32("history count"), r.u32("history count"), r.u32("history count")
		te.prevState = tcpState(r.byte1("TCP state"))
		if te.prevState > tcpReset {
			r.fail("bad TCP state")
		}
	}
	for _, at := range [...]*int64{&x.attemptAt, &x.closeAt, &x.resetAt, &x.last} {
		if v := r.varint("timer"); v != 0 {
			*at = v + e.first - 1
		}
	}
	tf := r.byte1("ext flags")
	if tf&^3 != 0 {
		r.fail("unknown ext flags")
	}
	tk := &x.tunnel
	x.active, tk.v4 = tf&1 != 0, tf&2 != 0
	tk.typ, tk.changes = decode.Tunnel(r.byte1("tunnel")), r.byte1("tunnel changes")
	if tk.typ != decode.TunnelNone {
		tk.src, tk.dst = r.addr(tk.v4), r.addr(tk.v4)
		tk.srcPort, tk.dstPort = r.u16("port"), r.u16("port")
	}
	x.tunnelID = r.u32("tunnel identity")
	return e
}

// entryV5 reads the rest of a version 5 flow: its history (without '^'), then the originator's
// and the responder's counters and TCP tracking of the time, which become Zeek's.
func (r *stateReader) entryV5(t *Table, e *entry) {
	n := int(r.byte1("history length"))
	if n > 14 {
		r.fail("history too long")
		return
	}
	letters := r.next(n, "history")
	if e.lookup.proto == decode.ProtoTCP {
		t.giveExt(e)
	}
	if e.flags&flipped != 0 {
		e.addHistory('^')
	}
	const v5Letters = "shadfrq"
	bits := map[byte]uint16{'s': histSYN, 'h': histSYN, 'a': histACK, 'd': histData, 'f': histFIN, 'r': histRST, 'q': histMulti}
	for _, c := range letters {
		lower := c | 0x20
		if strings.IndexByte(v5Letters, lower) < 0 {
			r.fail(fmt.Sprintf("history letter %q", c))
			return
		}
		if e.checkHistory(bits[lower], lower, c != lower) && lower != 's' && lower != 'h' {
			r.fail(fmt.Sprintf("history letter %q twice", c))
			return
		}
	}
	o := e.origSide()
	for _, side := range [2]int{o, 1 - o} {
		ep := &e.ep[side]
		r.endpoint5(ep)
		if e.ext != nil {
			e.ext.tcp[side].prevState = tcpInactive
		}
		if e.lookup.proto != decode.ProtoTCP && ep.Pkts > 0 {
			ep.bits |= epActive
		}
	}
	if e.ext != nil {
		e.ext.last = e.last
		if !e.ep[0].state.handshake() || !e.ep[1].state.handshake() {
			e.flags |= tcpIdle
		}
	}
}

func (r *stateReader) addr(v4 bool) [16]byte {
	var a [16]byte
	if v4 {
		a[10], a[11] = 0xff, 0xff
		copy(a[12:], r.next(4, "address"))
	} else {
		copy(a[:], r.next(16, "address"))
	}
	return a
}

// history reads the letters.
func (r *stateReader) history(e *entry) {
	n := int(r.byte1("history length"))
	limit := entryHistory
	if e.ext != nil {
		limit = maxHistory
	}
	if n > limit {
		r.fail("history too long")
		return
	}
	for _, c := range r.next(n, "history") {
		e.addHistory(c)
	}
}

func (r *stateReader) endpoint(ep *Endpoint) {
	ep.Pkts = r.uvarint("packets")
	ep.IPBytes = r.uvarint("IP bytes")
	ep.count = r.uvarint("payload bytes")
	ep.startSeq = r.u32("start sequence number")
	ep.Flags = r.u16("TCP flags")
	ep.state, ep.bits = tcpState(r.byte1("TCP state")), r.byte1("endpoint bits")
	if ep.state > tcpReset || ep.bits&^epBitsAll != 0 {
		r.fail("bad TCP state")
	}
}

// endpoint5 reads a version 5 endpoint, whose bits were seqStarted, didSYN and finSeen, and whose
// count was the highest sequence offset reached.
func (r *stateReader) endpoint5(ep *Endpoint) {
	ep.Pkts = r.uvarint("packets")
	ep.IPBytes = r.uvarint("IP bytes")
	ep.count = r.uvarint("payload bytes")
	ep.startSeq = r.u32("start sequence number")
	ep.Flags = r.u16("TCP flags")
	state, bits := tcpState(r.byte1("TCP state")), r.byte1("sequence bits")
	if state > tcpReset || bits&^7 != 0 {
		r.fail("bad TCP state")
	}
	ep.state = state
	if bits&1 != 0 {
		ep.bits |= epSeqInit
	}
	if bits&4 != 0 {
		ep.bits |= epFIN
	}
	if state == tcpClosed || state == tcpReset {
		ep.bits |= epDidClose
	}
}
