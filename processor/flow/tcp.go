package flow

import (
	"capfleet.dev/capfleet/processor/decode"
)

// Zeek's TCP tracking (its TCPSessionAdapter and TCP_Endpoint), which decides a connection's
// states, most of its history letters and when it ends: written from Zeek's documented rules and
// its conn.log baselines. Sequence numbers are relative to an endpoint's start and 64 bits wide.

// tooLargeSeqDelta is how far a SYN's or RST's sequence number may move the last sequence
// number before Zeek distrusts it.
const tooLargeSeqDelta = 1 << 20

// tcpSegment is what the state machine reads of a TCP header.
type tcpSegment struct {
	seq, ack          uint32
	flags             uint16
	window            uint16
	len               int // payload
	syn, fin, rst, ak bool
}

// newSegment reads the header of a segment; extra is how much more payload the IP header claims
// than the frame carried on the wire, which Zeek counts (its length is the IP header's).
func newSegment(l4 *decode.Transport, extra int) tcpSegment {
	fl := l4.Flags
	return tcpSegment{
		seq: l4.Seq, ack: l4.Ack, flags: fl, window: l4.Window, len: max(l4.PayloadLen+extra, 0),
		syn: fl&decode.TCPSyn != 0, fin: fl&decode.TCPFin != 0, rst: fl&decode.TCPRst != 0, ak: fl&decode.TCPAck != 0,
	}
}

// relSeq places an absolute sequence number in the endpoint's 64-bit space next to last (a
// relative sequence it reached), as Zeek counts wraps; under is true before the start.
func relSeq(start uint32, last uint64, seq uint32) (rel uint64, under bool) {
	near := int64(last) + int64(int32(seq-(start+uint32(last))))
	return uint64(near), near < 0
}

// advance moves a relative sequence forward to the absolute one given, as Zeek's
// UpdateLastSeq and UpdateAckSeq do: a smaller absolute number counts as a wrap.
func advance(start uint32, rel uint64, to uint32) uint64 {
	return rel + uint64(to-(start+uint32(rel)))
}

// tcpPacket runs one segment from side through Zeek's TCP tracking; it does not count it.
func (t *Table) tcpPacket(f *entry, side int, h *decode.IPHeader, now int64) {
	l4 := &h.L4
	extra := 0
	if h.Reported > 0 && h.TotalLen > h.Reported {
		extra = h.TotalLen - h.Reported // a frame cut short on the wire
	}
	seg := newSegment(l4, extra)
	s := &seg
	x := f.ext
	if o := f.origSide(); f.ep[o].state == tcpSynAckSent && f.ep[1-o].state == tcpInactive && f.flags&flipped == 0 &&
		!s.syn && !s.rst && (s.ak || s.len > 0) {
		// A connection that began with a SYN-ACK, followed by an ACK or data: no stealth scan
		// does that, so the SYN-ACK came from the responder and the SYN was missed. Zeek takes it
		// as though it had flipped the roles at the SYN-ACK.
		t.flipFromStart(f)
	}
	ep, peer := &f.ep[side], &f.ep[1-side]
	xe, xp := &x.tcp[side], &x.tcp[1-side]
	fromOrig := side == f.origSide()

	segLen := s.len
	if s.syn {
		segLen++
	}
	if s.fin {
		segLen++
	}
	if s.rst {
		segLen -= s.len // a RST's data is not part of the stream
	}
	onePast := s.seq + uint32(segLen)
	t.tcpInitEndpoint(ep, xe, s, onePast)
	rel, _ := relSeq(ep.startSeq, ep.count, s.seq)
	t.tcpHistory(f, xe, s, uint32(rel), fromOrig)
	// Zero windows are worth a letter unless they come with or after a RST, or after the
	// peer's FIN.
	if s.window == 0 && !s.rst && peer.state != tcpClosed && ep.state != tcpReset {
		f.scaledHistory(&xe.win0, 'w', fromOrig)
	}
	if f.ep[0].bits&epDidClose == 0 || f.ep[1].bits&epDidClose == 0 {
		x.last = max(x.last, now)
	}
	if s.fin {
		ep.bits |= epFIN
	}
	if s.ak {
		if peer.state == tcpInactive {
			// Number the peer's data as though its SYN had been seen.
			peer.startSeq, peer.count, xp.ack = s.ack-1, 0, 0
			peer.bits |= epSeqInit
		} else if _, ackUnder := relSeq(peer.startSeq, xp.ack, s.ack); !ackUnder && !s.rst {
			// Acknowledgements in RSTs are not trusted.
			d := int32(s.ack - (peer.startSeq + uint32(xp.ack)))
			if !(s.ack == 0 && d > tooLargeSeqDelta) && d > 0 {
				xp.ack = advance(peer.startSeq, xp.ack, s.ack)
			}
		}
	}
	deltaLast := t.tcpUpdateLast(f, ep, xe, s, onePast, fromOrig)
	doClose, genEvent := t.tcpStateMachine(f, side, s, deltaLast, fromOrig, now)
	if doClose {
		t.tcpClosed(f, side, genEvent)
	}
}

// flipFromStart makes the SYN-ACK that opened f the responder's, as though Zeek's originator
// rules had flipped the roles on it: the history so far changes case after a '^', and the
// sender of the SYN-ACK is established rather than waiting for an answer to it.
func (t *Table) flipFromStart(f *entry) {
	synAck := f.origSide()
	n := int(f.historyLen)
	letters := [maxHistory]byte{'^'}
	for i := range n {
		letters[i+1] = f.historyAt(i) ^ 0x20 // letters only: swap the case
	}
	f.historyLen = 0
	for _, c := range letters[:min(n+1, maxHistory)] {
		f.addHistory(c)
	}
	f.historySet = f.historySet>>8 | f.historySet<<8
	f.origIsB = !f.origIsB
	f.flags |= flipped
	t.tcpSetState(f, synAck, tcpEstablished)
	f.ext.tcp[synAck].prevState = tcpInactive
	f.ext.attemptAt = 0
	t.reschedule(f)
}

// tcpInitEndpoint sets the endpoint's sequence space from its first segment, or anew from a SYN
// that restarts it, as Zeek's init_endpoint.
func (t *Table) tcpInitEndpoint(ep *Endpoint, xe *tcpEndpoint, s *tcpSegment, onePast uint32) {
	restart := func() {
		ep.startSeq, xe.ack = s.seq, 0
		ep.count = uint64(onePast - s.seq)
		ep.bits |= epSeqInit
	}
	switch ep.state {
	case tcpInactive:
		if s.syn {
			restart()
			return
		}
		// A partial connection: number the data as though a SYN had been seen, and take this
		// segment's start as the last sequence so that it is not a retransmission.
		ep.startSeq, xe.ack, ep.count = s.seq-1, 0, 1
		ep.bits |= epSeqInit
	case tcpSynSent, tcpSynAckSent:
		if s.syn && s.seq != ep.startSeq {
			restart()
		}
	case tcpEstablished, tcpPartial:
		if s.syn {
			restart()
		}
	case tcpReset:
		if s.syn && xe.prevState == tcpInactive {
			restart()
		}
	}
}

// tcpHistory adds the letters of a segment's flags and data, as Zeek's update_history: the
// multi-flag and once-per-direction letters, and S, H, F and R again for a new sequence number.
func (t *Table) tcpHistory(f *entry, xe *tcpEndpoint, s *tcpSegment, rel uint32, fromOrig bool) {
	n := b2i(s.syn) + b2i(s.fin) + b2i(s.rst)
	repeat := func(c byte) {
		if fromOrig {
			c -= 'a' - 'A'
		}
		f.addHistory(c)
	}
	switch {
	case n > 1:
		if s.fin && s.rst {
			f.checkHistory(histFINRST, 'i', fromOrig)
		} else {
			f.checkHistory(histMulti, 'q', fromOrig)
		}
	case s.syn:
		c := byte('s')
		if s.ak {
			c = 'h'
		}
		if f.checkHistory(histSYN, c, fromOrig) && rel != xe.histSYN {
			repeat(c)
		}
		xe.histSYN = rel
	case s.fin:
		// A FIN's sequence number is at the end of its data.
		end := rel + uint32(s.len)
		if f.checkHistory(histFIN, 'f', fromOrig) && end != xe.histFIN {
			repeat('f')
		}
		xe.histFIN = end
	case s.rst:
		if f.checkHistory(histRST, 'r', fromOrig) && rel != xe.histRST {
			repeat('r')
		}
		xe.histRST = rel
	case s.len > 0:
		f.checkHistory(histData, 'd', fromOrig)
	case s.ak:
		f.checkHistory(histACK, 'a', fromOrig)
	}
}

// tcpUpdateLast moves the endpoint's last sequence number, or counts a retransmission, as Zeek's
// update_last_seq; it returns how far the segment's end is past the last sequence number.
func (t *Table) tcpUpdateLast(f *entry, ep *Endpoint, xe *tcpEndpoint, s *tcpSegment, onePast uint32, fromOrig bool) int32 {
	last := ep.startSeq + uint32(ep.count)
	delta := int32(onePast - last)
	switch {
	case (s.syn || s.rst) && (delta > tooLargeSeqDelta || delta < -tooLargeSeqDelta):
	case s.fin && ep.count == 1:
		// Only the SYN and now a FIN seen (maybe of a connection beyond 2 GB): trust the FIN.
		ep.count = advance(ep.startSeq, ep.count, onePast)
	case ep.state == tcpReset:
		// Sequence numbers after a RST are not trusted.
	case delta > 0:
		ep.count = advance(ep.startSeq, ep.count, onePast)
	case s.len > 0:
		f.scaledHistory(&xe.rxmit, 't', fromOrig)
	}
	return delta
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tcpSetState moves a side to a new state, noting the previous one; the end of the handshake
// gives the connection Zeek's TCP inactivity timeout.
func (t *Table) tcpSetState(f *entry, side int, s tcpState) {
	ep := &f.ep[side]
	if s == ep.state {
		return
	}
	if !s.handshake() && ep.state.handshake() && f.ep[1-side].state.handshake() && f.flags&tcpIdle == 0 {
		t.unlinkLRU(f)
		f.flags = f.flags&^classMask | tcpIdle | classTCP<<classShift
		t.touch(f)
	}
	f.ext.tcp[side].prevState = ep.state
	ep.state = s
}

// tcpStateMachine is Zeek's UpdateStateMachine: the side's new state after a segment, and
// whether the segment closes it (and whether Zeek reports that close as finished).
func (t *Table) tcpStateMachine(f *entry, side int, s *tcpSegment, deltaLast int32, fromOrig bool, now int64) (doClose, genEvent bool) {
	ep, peer := &f.ep[side], &f.ep[1-side]
	x := f.ext
	switch ep.state {
	case tcpInactive:
		if s.syn {
			if fromOrig {
				if s.ak {
					t.tcpSetState(f, side, tcpSynAckSent)
				} else {
					t.tcpSetState(f, side, tcpSynSent)
				}
				if t.delays.attempt > 0 && x.attemptAt == 0 {
					t.setTimer(f, &x.attemptAt, now+int64(t.delays.attempt))
				}
			} else {
				if !s.ak && peer.state == tcpSynAckSent {
					// The SYN-ACK came before the SYN (two capture interfaces): flip the roles
					// and take the connection as established.
					t.flip(f)
					t.tcpSetState(f, 1-side, tcpEstablished)
				}
				if peer.state == tcpSynSent {
					t.tcpSetState(f, 1-side, tcpEstablished)
				}
				t.tcpSetState(f, side, tcpEstablished)
			}
		}
		if s.fin {
			t.tcpSetState(f, side, tcpClosed)
			doClose, genEvent = true, true
		}
		if s.rst {
			t.tcpSetState(f, side, tcpReset)
			reject := false
			if fromOrig {
				// A SYN-ACK seen but no SYN: a reverse scan, rejected.
				reject = peer.state == tcpEstablished
			} else {
				reject = peer.state == tcpSynSent || peer.state == tcpSynAckSent
			}
			doClose, genEvent = true, !reject
		}
		if ep.state == tcpInactive { // no flag moved it
			origState := f.ep[f.origSide()].state
			switch {
			case !fromOrig && s.len == 0 && origState == tcpSynSent:
				// Some stacks ACK a SYN before answering it: not yet a partial connection.
			case s.ak && peer.state == tcpEstablished:
				// A SYN-ACK seen, then an ACK: the SYN was missed, the connection is up.
				t.tcpSetState(f, side, tcpEstablished)
			default:
				t.tcpSetState(f, side, tcpPartial)
			}
		}
	case tcpSynSent, tcpSynAckSent:
		if s.fin {
			t.tcpSetState(f, side, tcpClosed)
			doClose, genEvent = true, true
		}
		if s.rst {
			t.tcpSetState(f, side, tcpReset)
			x.active = false
			doClose = true
		}
	case tcpEstablished, tcpPartial:
		if s.syn && ep.state == tcpPartial && peer.state == tcpInactive && !s.ak {
			t.tcpSetState(f, side, tcpSynSent)
		}
		if s.fin && !s.rst {
			t.tcpSetState(f, side, tcpClosed)
			if peer.state == tcpReset && x.tcp[1-side].prevState == tcpClosed {
				// The peer's FIN then RST was a normal close after all.
				t.tcpSetState(f, 1-side, tcpClosed)
			}
			doClose, genEvent = true, true
		}
		if s.rst {
			t.tcpSetState(f, side, tcpReset)
			doClose = true
			if peer.state != tcpReset || x.tcp[1-side].prevState != tcpEstablished {
				x.active = false
			}
		}
	case tcpClosed:
		// After a FIN exchange a RST changes nothing; after its own FIN alone, the side is
		// reset and the connection ends after the reset delay.
		if s.rst && peer.state != tcpClosed {
			t.tcpSetState(f, side, tcpReset)
			if ep.bits&epDidClose == 0 {
				doClose = true
			}
			t.setTimer(f, &x.resetAt, now+int64(t.delays.reset))
		}
	}
	return doClose, genEvent
}

// tcpClosed is Zeek's ConnectionClosed: the side's close is noted once; when the connection is
// closed for good (a reset, or the peer closed or never sent) it ends after the close delay.
func (t *Table) tcpClosed(f *entry, side int, genEvent bool) {
	ep, peer := &f.ep[side], &f.ep[1-side]
	x := f.ext
	if ep.bits&epDidClose != 0 {
		return
	}
	ep.bits |= epDidClose
	if ep.state != tcpReset && peer.bits&epDidClose == 0 && peer.state != tcpInactive {
		return // half closed: the connection stays until it idles or closes
	}
	if (x.tcp[side].prevState != tcpInactive || peer.state != tcpInactive) && genEvent {
		x.active = false
	}
	x.attemptAt, x.resetAt = 0, 0
	t.setTimer(f, &x.closeAt, x.last+int64(t.delays.close))
}

// tcpReuse is Zeek's IsReuse: whether a SYN (or, before the originator sent anything, a
// SYN-ACK) starts a new connection on the 5-tuple of f rather than belonging to it.
func tcpReuse(f *entry, l4 *decode.Transport) bool {
	s := newSegment(l4, 0)
	if l4.BadOffset || !s.syn {
		return false
	}
	o := f.origSide()
	orig, resp := &f.ep[o], &f.ep[1-o]
	connOrig := orig
	if s.ak {
		if orig.state != tcpInactive {
			return false
		}
		connOrig = resp
	}
	if orig.bits&epDidClose != 0 || resp.bits&epDidClose != 0 {
		return true
	}
	if s.seq == connOrig.startSeq {
		return false // a retransmission
	}
	// A SYN after a SYN-ACK that acknowledged it: the two were captured out of order.
	return s.ak || connOrig.state != tcpSynAckSent || resp.state != tcpInactive || s.seq != resp.startSeq
}

// tcpTimers runs the flow's Zeek timers due at now, in time order, and reports whether one
// ended the connection.
func (t *Table) tcpTimers(f *entry, now int64) bool {
	x := f.ext
	for {
		at, which := int64(0), (*int64)(nil)
		for _, p := range [...]*int64{&x.attemptAt, &x.resetAt, &x.closeAt} {
			if *p != 0 && *p <= now && (which == nil || *p < at) {
				at, which = *p, p
			}
		}
		if which == nil {
			return false
		}
		*which = 0
		o := f.origSide()
		orig, resp := &f.ep[o], &f.ep[1-o]
		switch which {
		case &x.attemptAt:
			// No answer to the SYN: the attempt ends.
			if x.active && (orig.state == tcpSynSent || orig.state == tcpSynAckSent) && resp.state == tcpInactive {
				return true
			}
		case &x.resetAt:
			if x.active {
				return true
			}
		case &x.closeAt:
			return true
		}
	}
}
