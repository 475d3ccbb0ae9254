package flow

import (
	"bytes"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// History: the first letters live in the entry, the rest (TCP's repeats and scaled letters) in
// its ext; a history longer than maxHistory keeps its first maxHistory letters.
const (
	entryHistory = 6
	extHistory   = 26
	maxHistory   = entryHistory + extHistory
)

// Bits of entry.historySet: the letters Zeek records once per direction (Zeek's HIST_* masks),
// the originator's in the low byte and the responder's in the high one. UDP's 'D' shares
// histData. As in Zeek, the bits stay put when the roles flip.
const (
	histSYN uint16 = 1 << iota // 'S' or 'H'
	histFIN
	histRST
	histFINRST // 'I'
	histData   // 'D'
	histACK    // 'A'
	histMulti  // 'Q'
)

// entry is a flow while it is in the table, laid out to take 160 bytes (a size class): with the
// map's slot for its key, the table's memory per flow. Its endpoints are by side of the lookup
// key (ep[0] is lookup.a), so that Zeek's role flips only change origIsB.
type entry struct {
	lookup     lookupKey
	origIsB    bool // the originator is lookup.b
	flags      uint8
	historyLen uint8
	dirty      bool // changed since the last Table.Dirty; in the padding before first, so free

	first, last int64 // Unix nanoseconds
	ep          [2]Endpoint

	historySet uint16 // histSYN... per direction, as Zeek's hist_seen
	history    [entryHistory]byte

	ext *ext // TCP tracking, more history, tunnel: nil for a plain UDP, ICMP or other flow

	lruPrev, lruNext *entry // by last activity, least recent first
}

// entry flags.
const (
	flipped uint8 = 1 << iota // roles flipped at least once ('^' in the history)
	tcpIdle                   // TCP past its handshake: Zeek's TCP inactivity timeout applies
	oneWay                    // ICMP message without a counterpart: the lookup key is not canonical
	// The timeout class (classTCP...) in two bits.
	classShift = 3
	classMask  = 3 << classShift
)

// ext is what a flow needs beyond its entry: Zeek's TCP endpoint tracking and timers, history
// letters past the entry's, counts behind the letters Zeek scales, and the tunnel the flow came
// through. A table gives one to TCP and tunnelled flows, and to others once they need it.
type ext struct {
	tcp     [2]tcpEndpoint // by side, as entry.ep
	history [extHistory]byte

	// Zeek's TCP timers that remove a connection (Unix nanoseconds, 0 when not pending): the
	// attempt timer, the delete timer after a close, the reset timer after a RST that follows
	// a FIN.
	attemptAt, closeAt, resetAt int64
	due                         int64 // the earliest of them, which files the flow in Table.timers
	// last is Zeek's last time of a TCP connection: its last packet's, except those that came
	// after both sides closed (or were not counted). Duration and the close delay count from it.
	last    int64
	heapIdx int32 // in Table.timers, -1 when not there
	active  bool  // Zeek's is_active: no close or reset reported yet

	tunnel   tunnelKey // the first tunnel the flow's packets came in
	tunnelID uint32    // identity of the last packet's encapsulation, 0 for none
}

// tcpEndpoint is the rest of Zeek's TCP_Endpoint for one side.
type tcpEndpoint struct {
	ack                       uint64 // highest acknowledgement of its data, relative to startSeq (Zeek's AckSeq)
	histSYN, histFIN, histRST uint32 // relative sequence of the last SYN, FIN and RST: a repeat letter needs a new one
	// Counts behind the letters Zeek writes at the 1st, 10th, 100th... event: 'C' bad checksum,
	// 'T' retransmission, 'W' zero window, 'G' content gap.
	chk, rxmit, win0, gap uint32
	prevState             tcpState
}

// tunnelKey is a Tunnel in the entry's compact form.
type tunnelKey struct {
	src, dst         [16]byte
	srcPort, dstPort uint16
	typ              decode.Tunnel
	v4               bool
	changes          uint8
}

// identity is a hash of the tunnel that does not depend on its direction (Zeek takes both
// directions of a tunnel, or of the UDP connection carrying it, as one); never 0.
func (k *tunnelKey) identity() uint32 {
	a, b := k.src[:], k.dst[:]
	pa, pb := k.srcPort, k.dstPort
	if c := bytes.Compare(a, b); c > 0 || (c == 0 && pa > pb) {
		a, b, pa, pb = b, a, pb, pa
	}
	h := uint32(2166136261)
	mix := func(c byte) { h = (h ^ uint32(c)) * 16777619 }
	for _, c := range a {
		mix(c)
	}
	for _, c := range b {
		mix(c)
	}
	mix(byte(pa >> 8))
	mix(byte(pa))
	mix(byte(pb >> 8))
	mix(byte(pb))
	mix(byte(k.typ))
	return h | 1
}

func (k *tunnelKey) tunnel() Tunnel {
	if k.typ == decode.TunnelNone {
		return Tunnel{}
	}
	return Tunnel{Type: k.typ, Src: addr(k.src, k.v4), Dst: addr(k.dst, k.v4), SrcPort: k.srcPort, DstPort: k.dstPort, Changes: k.changes}
}

// orig and resp are the sides of the originator and the responder.
func (e *entry) origSide() int {
	if e.origIsB {
		return 1
	}
	return 0
}

// key is the entry's key in the direction of its originator.
func (e *entry) key() Key {
	l := &e.lookup
	k := Key{Orig: addr(l.a, l.v4), Resp: addr(l.b, l.v4), OrigPort: l.aPort, RespPort: l.bPort, Proto: l.proto, VLAN: l.vlan}
	if e.origIsB {
		k.Orig, k.Resp, k.OrigPort, k.RespPort = k.Resp, k.Orig, k.RespPort, k.OrigPort
	}
	return k
}

// flow fills f from the entry.
func (e *entry) flow(f *Flow) {
	o := e.origSide()
	*f = Flow{
		Key: e.key(), First: time.Unix(0, e.first), Last: time.Unix(0, e.last), LastPacket: time.Unix(0, e.last),
		Orig: e.ep[o], Resp: e.ep[1-o], Flipped: e.flags&flipped != 0, historyLen: e.historyLen,
	}
	copy(f.history[:], e.history[:])
	if x := e.ext; x != nil {
		copy(f.history[entryHistory:], x.history[:])
		f.Tunnel = x.tunnel.tunnel()
		if e.lookup.proto == decode.ProtoTCP {
			f.Orig.count = e.tcpSize(o)
			f.Resp.count = e.tcpSize(1 - o)
			if x.last != 0 {
				f.Last = time.Unix(0, x.last)
			} else {
				f.Last = f.First // no segment counted
			}
		}
	}
}

// tcpSize is Zeek's TCP_Endpoint::Size: the sequence space the side covered or had
// acknowledged, less its SYN and FIN.
func (e *entry) tcpSize(side int) uint64 {
	ep, peer, x := &e.ep[side], &e.ep[1-side], &e.ext.tcp[side]
	if x.prevState == tcpSynSent && ep.state == tcpReset && peer.state == tcpInactive && x.ack > 1 {
		// A half-open connection found and aborted: its sequence numbers say nothing of data.
		return 0
	}
	size := max(ep.count, x.ack)
	if size != 0 {
		size--
	}
	if ep.bits&epFIN != 0 && size != 0 {
		size--
	}
	return size
}

// addHistory appends a letter (upper case for the originator).
func (e *entry) addHistory(c byte) {
	n := int(e.historyLen)
	switch {
	case n < entryHistory:
		e.history[n] = c
	case e.ext != nil && n < maxHistory:
		e.ext.history[n-entryHistory] = c
	default:
		return
	}
	e.historyLen++
}

// historyAt is the i-th letter.
func (e *entry) historyAt(i int) byte {
	if i < entryHistory {
		return e.history[i]
	}
	return e.ext.history[i-entryHistory]
}

// checkHistory records a letter Zeek records once per direction (lower case given, bit of the
// originator's byte) and says whether it was already there, as Zeek's CheckHistory.
func (e *entry) checkHistory(bit uint16, c byte, fromOrig bool) (seen bool) {
	if fromOrig {
		c -= 'a' - 'A'
	} else {
		bit <<= 8
	}
	if e.historySet&bit != 0 {
		return true
	}
	e.historySet |= bit
	e.addHistory(c)
	return false
}

// scaledHistory counts an event whose letter Zeek writes at its 1st, 10th, 100th... occurrence.
func (e *entry) scaledHistory(count *uint32, c byte, fromOrig bool) {
	*count++
	for n := *count; n%10 == 0 || n == 1; n /= 10 {
		if n == 1 {
			if fromOrig {
				c -= 'a' - 'A'
			}
			e.addHistory(c)
			return
		}
	}
}
