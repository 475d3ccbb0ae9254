package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StateVersion leads every saved state. A change to what AppendState writes takes a new version, so
// that a state saved by another build is refused with an error that says so rather than misread.
// Versions up to 4 were the pipeline's own flow table's checkpoints.
const StateVersion = 5

// Per-flow flag bits of the state.
const (
	stateV4 uint8 = 1 << iota
	stateOrigIsB
	stateFlipped
	stateDirty
	stateFlagsAll = stateV4 | stateOrigIsB | stateFlipped | stateDirty
)

// AppendState appends the open flows to b, so that a table made with RestoreState carries on as
// this one would. The form: the version byte, the flow count, the table's clock, then each flow
// in LRU order (which restoring rebuilds the eviction order from), mostly as varints: about 60
// bytes for an IPv4 flow.
func (t *Table) AppendState(b []byte) []byte {
	b = append(b, StateVersion)
	b = binary.AppendUvarint(b, uint64(len(t.flows)))
	var now int64
	if !t.now.IsZero() {
		now = t.now.UnixNano()
	}
	b = binary.AppendVarint(b, now)
	for f := t.lruHead; f != nil; f = f.lruNext {
		b = f.appendState(b)
	}
	return b
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
	// The history letters alone: which (letter, direction) pairs were seen follows from them.
	b = append(b, e.historyLen)
	b = append(b, e.history[:e.historyLen]...)
	b = e.Orig.appendState(b)
	return e.Resp.appendState(b)
}

func (e *entry) stateFlags() uint8 {
	return flagIf(e.lookup.v4, stateV4) | flagIf(e.origIsB, stateOrigIsB) | flagIf(e.flipped, stateFlipped) | flagIf(e.dirty, stateDirty)
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

// RestoreState fills an empty table with the flows of a state from AppendState. Flows beyond
// MaxFlows (a smaller table than the one saved) are evicted, least recently active first. A state
// that is cut short, corrupt or of another version is an error, and leaves the table empty.
func (t *Table) RestoreState(b []byte) error {
	if len(t.flows) != 0 {
		return errors.New("flow state: restoring into a table that holds flows")
	}
	if err := t.restore(b); err != nil {
		t.flows, t.lruHead, t.lruTail, t.now = make(map[lookupKey]*entry), nil, nil, time.Time{}
		return err
	}
	for len(t.flows) > t.cfg.MaxFlows {
		t.end(t.lruHead, EndEvicted)
	}
	return nil
}

func (t *Table) restore(b []byte) error {
	r := &stateReader{b: b}
	if v := r.byte1("version"); r.err == nil && v != StateVersion {
		return fmt.Errorf("flow state version %d, this build reads version %d", v, StateVersion)
	}
	n := r.uvarint("flow count")
	if r.err == nil && n > uint64(len(r.b)) { // every flow takes many bytes: a count beyond the size is corrupt
		r.fail("flow count beyond the data")
	}
	if now := r.varint("clock"); now != 0 {
		t.now = time.Unix(0, now)
	}
	seenDirty := false
	for i := uint64(0); i < n && r.err == nil; i++ {
		e := r.entry()
		if r.err != nil {
			break
		}
		if _, dup := t.flows[e.lookup]; dup {
			return errors.New("flow state: a flow twice")
		}
		// Dirty relies on the changed flows being the LRU list's tail.
		if seenDirty && !e.dirty {
			return errors.New("flow state: an unchanged flow after a changed one")
		}
		seenDirty = e.dirty
		t.flows[e.lookup] = e
		t.touch(e)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last flow", len(r.b)))
	}
	return r.err
}

// stateReader reads a state; the first error sticks and later reads return zeros.
type stateReader struct {
	b   []byte
	err error
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

func (r *stateReader) entry() *entry {
	e := &entry{}
	fl := r.byte1("flags")
	if fl&^stateFlagsAll != 0 {
		r.fail("unknown flow flags")
	}
	l := &e.lookup
	l.v4, e.origIsB, e.flipped, e.dirty = fl&stateV4 != 0, fl&stateOrigIsB != 0, fl&stateFlipped != 0, fl&stateDirty != 0
	l.proto = r.byte1("protocol")
	l.a, l.b = r.addr(l.v4), r.addr(l.v4)
	l.aPort, l.bPort = r.u16("port"), r.u16("port")
	l.vlan = [2]uint16{r.u16("vlan"), r.u16("vlan")}
	e.first = r.varint("first packet time")
	e.last = e.first + int64(r.uvarint("duration"))
	r.history(e)
	r.endpoint(&e.Orig)
	r.endpoint(&e.Resp)
	return e
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

// history reads the letters and rebuilds which (letter, direction) pairs they hold.
func (r *stateReader) history(e *entry) {
	n := int(r.byte1("history length"))
	if n > maxHistory {
		r.fail("history too long")
		return
	}
	for _, c := range r.next(n, "history") {
		fromOrig := c >= 'A' && c <= 'Z'
		lower := c
		if fromOrig {
			lower += 'a' - 'A'
		}
		if strings.IndexByte(historyLetters, lower) < 0 {
			r.fail(fmt.Sprintf("history letter %q", c))
			return
		}
		before := e.historyLen
		e.addHistory(lower, fromOrig)
		if e.historyLen == before {
			r.fail(fmt.Sprintf("history letter %q twice", c))
			return
		}
	}
}

func (r *stateReader) endpoint(ep *Endpoint) {
	ep.Pkts = r.uvarint("packets")
	ep.IPBytes = r.uvarint("IP bytes")
	ep.count = r.uvarint("payload bytes")
	seq := r.uvarint("start sequence number")
	if seq > 0xffffffff {
		r.fail("start sequence number out of range")
	}
	ep.startSeq = uint32(seq)
	ep.Flags = r.u16("TCP flags")
	ep.state, ep.bits = tcpState(r.byte1("TCP state")), r.byte1("sequence bits")
	if ep.state > tcpReset || ep.bits&^(seqStarted|didSYN|finSeen) != 0 {
		r.fail("bad TCP state")
	}
}
