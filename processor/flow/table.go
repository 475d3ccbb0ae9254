package flow

import (
	"bytes"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// EndReason says why a flow left the table.
type EndReason uint8

const (
	EndIdle    EndReason = iota // no packet for IdleTimeout
	EndActive                   // open for ActiveTimeout: exported, and later packets start a new flow
	EndEvicted                  // the table was full; the least recently active flow made room
	EndFlushed                  // Flush, at shutdown or end of file
	NumEndReasons
)

var endNames = [NumEndReasons]string{"idle", "active", "evicted", "flushed"}

func (r EndReason) String() string {
	if r < NumEndReasons {
		return endNames[r]
	}
	return "unknown"
}

// Config sets the table's limits. Zero values take the defaults of `capfleet process`.
type Config struct {
	IdleTimeout   time.Duration // default 60s
	ActiveTimeout time.Duration // default 30m
	MaxFlows      int           // default 1,000,000
	// OnEnd receives every flow that leaves the table. The *Flow is reused afterwards.
	OnEnd func(f *Flow, why EndReason)
}

// Stats counts what the table did. Not synchronised, like the Table.
type Stats struct {
	Packets   uint64 // packets added to a flow
	NotIP     uint64 // packets without an IP header, ignored
	Fragments uint64 // non-first IP fragments: no ports, so no flow to add them to
	Created   uint64
	Ended     [NumEndReasons]uint64
}

// Table aggregates packets into flows. Time is the packets' own: timeouts are measured in
// capture time, so a file read offline expires flows as a live capture would have. Not safe
// for concurrent use: shard by flow (packetrecord.FlowHash) and give each shard a Table.
type Table struct {
	cfg     Config
	flows   map[lookupKey]*entry
	lruHead *entry // least recently active
	lruTail *entry
	free    []*entry
	out     Flow // handed to OnEnd
	now     time.Time
	Stats   Stats
}

// New returns an empty table.
func New(cfg Config) *Table {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.ActiveTimeout <= 0 {
		cfg.ActiveTimeout = 30 * time.Minute
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 1_000_000
	}
	if cfg.OnEnd == nil {
		cfg.OnEnd = func(*Flow, EndReason) {}
	}
	return &Table{cfg: cfg, flows: make(map[lookupKey]*entry)}
}

// Len is the number of flows in the table.
func (t *Table) Len() int { return len(t.flows) }

// packetKey derives the flow key of a packet in its own direction and the lookup key.
func packetKey(p *decode.Packet, h *decode.IPHeader) (k Key, oneWay bool) {
	k = Key{Orig: h.Src, Resp: h.Dst, Proto: h.Proto, VLAN: p.VLAN}
	switch h.Proto {
	case decode.ProtoTCP, decode.ProtoUDP, decode.ProtoSCTP:
		if h.L4.Proto == h.Proto {
			k.OrigPort, k.RespPort = h.L4.SrcPort, h.L4.DstPort
		}
	case decode.ProtoICMP, decode.ProtoICMPv6:
		if h.L4.Proto == h.Proto {
			k.OrigPort, k.RespPort, oneWay = icmpPorts(h.Proto == decode.ProtoICMPv6, h.L4.ICMPType, h.L4.ICMPCode)
		}
	}
	return k, oneWay
}

// canonical is the lookup key of k; swapped says the packet's source is lookup.b.
func canonical(k Key, oneWay bool) (l lookupKey, swapped bool) {
	l = lookupKey{a: k.Orig.As16(), b: k.Resp.As16(), aPort: k.OrigPort, bPort: k.RespPort, proto: k.Proto, vlan: k.VLAN, v4: k.Orig.Is4()}
	if !oneWay {
		c := bytes.Compare(l.a[:], l.b[:])
		if c > 0 || (c == 0 && l.aPort > l.bPort) {
			l.a, l.b, l.aPort, l.bPort = l.b, l.a, l.bPort, l.aPort
			swapped = true
		}
	}
	return l, swapped
}

// Add accounts one decoded packet, first ending the flows its timestamp has timed out.
func (t *Table) Add(p *decode.Packet) {
	h, ok := p.Inner()
	if !ok {
		t.Stats.NotIP++
		return
	}
	if h.Fragment && h.FragOffset != 0 {
		t.Stats.Fragments++
		return
	}
	now := p.Timestamp
	if now.After(t.now) {
		t.now = now
		t.Expire(now)
	}
	k, oneWay := packetKey(p, h)
	lk, swapped := canonical(k, oneWay)
	f := t.flows[lk]
	if f != nil && time.Duration(now.UnixNano()-f.first) >= t.cfg.ActiveTimeout {
		t.end(f, EndActive)
		f = nil
	}
	if f == nil {
		f = t.create(lk, swapped, now, h)
	}
	// The packet comes from the originator when its source is the key's originator side; a
	// host talking to itself on one port has one direction only.
	fromOrig := swapped == f.origIsB || (lk.a == lk.b && lk.aPort == lk.bPort)
	t.account(f, h, fromOrig, now.UnixNano())
	f.dirty = true
	t.touch(f)
	t.Stats.Packets++
}

func (t *Table) create(lk lookupKey, swapped bool, now time.Time, h *decode.IPHeader) *entry {
	if len(t.flows) >= t.cfg.MaxFlows && t.lruHead != nil {
		t.end(t.lruHead, EndEvicted)
	}
	var f *entry
	if n := len(t.free); n > 0 {
		f, t.free = t.free[n-1], t.free[:n-1]
		*f = entry{}
	} else {
		f = &entry{}
	}
	f.lookup, f.origIsB = lk, swapped
	// A first packet that is a SYN-ACK comes from the responder: Zeek swaps the roles.
	if h.Proto == decode.ProtoTCP && h.L4.Proto == decode.ProtoTCP &&
		h.L4.Flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn|decode.TCPAck {
		f.origIsB = !swapped
		f.flipped = true
	}
	f.first, f.last = now.UnixNano(), now.UnixNano()
	t.flows[lk] = f
	t.Stats.Created++
	return f
}

// account updates the counters, TCP state and history of f with one packet.
func (t *Table) account(f *entry, h *decode.IPHeader, fromOrig bool, now int64) {
	ep, peer := &f.Orig, &f.Resp
	if !fromOrig {
		ep, peer = peer, ep
	}
	f.last = max(f.last, now)
	ep.Pkts++
	ep.IPBytes += uint64(max(h.TotalLen, 0))
	l4 := &h.L4
	switch {
	case h.Proto == decode.ProtoTCP && l4.Proto == decode.ProtoTCP:
		ep.Flags |= l4.Flags
		ep.trackSeq(l4.Seq, l4.PayloadLen, l4.Flags)
		tcpTransition(ep, peer, l4.Flags)
		tcpHistory(f, l4, fromOrig)
	case h.Proto == decode.ProtoUDP && l4.Proto == decode.ProtoUDP:
		ep.count += uint64(l4.PayloadLen)
		if l4.PayloadLen > 0 {
			f.addHistory('d', fromOrig)
		}
	case h.Proto == decode.ProtoICMP || h.Proto == decode.ProtoICMPv6:
		ep.count += uint64(max(h.TotalLen-h.HeaderLen-8, 0))
	default:
		ep.count += uint64(max(h.TotalLen-h.HeaderLen, 0))
	}
}

func tcpTransition(ep, peer *Endpoint, flags uint16) {
	syn, ack := flags&decode.TCPSyn != 0, flags&decode.TCPAck != 0
	switch {
	case flags&decode.TCPRst != 0:
		ep.state = tcpReset
	case flags&decode.TCPFin != 0:
		ep.state = tcpClosed
	case syn && ack:
		if ep.state == tcpInactive || ep.state == tcpPartial || ep.state == tcpSynSent {
			ep.state = tcpSynAckSent
		}
	case syn:
		if ep.state == tcpInactive || ep.state == tcpPartial {
			ep.state = tcpSynSent
		}
	default:
		switch ep.state {
		case tcpInactive:
			ep.state = tcpPartial
		case tcpSynSent, tcpSynAckSent:
			if ack && peer.state != tcpInactive {
				ep.state = tcpEstablished
				if peer.state == tcpSynAckSent || peer.state == tcpSynSent {
					peer.state = tcpEstablished
				}
			}
		}
	}
}

func tcpHistory(f *entry, l4 *decode.Transport, fromOrig bool) {
	fl := l4.Flags
	syn, ack, fin, rst := fl&decode.TCPSyn != 0, fl&decode.TCPAck != 0, fl&decode.TCPFin != 0, fl&decode.TCPRst != 0
	switch {
	case syn && (fin || rst):
		f.addHistory('q', fromOrig)
	case syn && ack:
		f.addHistory('h', fromOrig)
	case syn:
		f.addHistory('s', fromOrig)
	}
	if l4.PayloadLen > 0 {
		f.addHistory('d', fromOrig)
	}
	if fin {
		f.addHistory('f', fromOrig)
	}
	if rst {
		f.addHistory('r', fromOrig)
	}
	if ack && !syn && !fin && !rst && l4.PayloadLen <= 0 {
		f.addHistory('a', fromOrig)
	}
}

// touch moves f to the most-recently-active end of the LRU list.
func (t *Table) touch(f *entry) {
	if t.lruTail == f {
		return
	}
	t.unlinkLRU(f)
	f.lruPrev = t.lruTail
	if t.lruTail != nil {
		t.lruTail.lruNext = f
	} else {
		t.lruHead = f
	}
	t.lruTail = f
}

func (t *Table) unlinkLRU(f *entry) {
	if f.lruPrev != nil {
		f.lruPrev.lruNext = f.lruNext
	} else if t.lruHead == f {
		t.lruHead = f.lruNext
	}
	if f.lruNext != nil {
		f.lruNext.lruPrev = f.lruPrev
	} else if t.lruTail == f {
		t.lruTail = f.lruPrev
	}
	f.lruPrev, f.lruNext = nil, nil
}

// end removes f, hands it to the callback and recycles it.
func (t *Table) end(f *entry, why EndReason) {
	delete(t.flows, f.lookup)
	t.unlinkLRU(f)
	t.Stats.Ended[why]++
	f.flow(&t.out)
	t.cfg.OnEnd(&t.out, why)
	t.free = append(t.free, f)
}

// Expire ends the flows idle for IdleTimeout at now. Add calls it as packet time advances; call
// it on a timer too if the packet stream can pause. A flow open for ActiveTimeout ends when its
// next packet comes (which starts a new flow), as NetFlow exporters do: a flow that sends nothing
// more ends by idling instead.
func (t *Table) Expire(now time.Time) {
	ns := now.UnixNano()
	for f := t.lruHead; f != nil && time.Duration(ns-f.last) >= t.cfg.IdleTimeout; f = t.lruHead {
		t.end(f, EndIdle)
	}
}

// Latest is the time of the newest packet in an open flow (zero when none is open): a table restored
// from a checkpoint has no other clock until its next packet.
func (t *Table) Latest() time.Time {
	if t.lruTail == nil {
		return time.Time{}
	}
	return time.Unix(0, t.lruTail.last)
}

// Flush ends every flow, least recently active first.
func (t *Table) Flush() {
	for t.lruHead != nil {
		t.end(t.lruHead, EndFlushed)
	}
}

// Dirty hands fn each open flow changed since the last call (or since New), most recently active
// first, for a consumer that writes running totals of open flows. Every change moves a flow to the
// recent end of the LRU list, so the changed flows are its tail: the walk costs what it returns,
// not the table's size.
func (t *Table) Dirty(fn func(f *Flow)) {
	for f := t.lruTail; f != nil && f.dirty; f = f.lruPrev {
		f.dirty = false
		f.flow(&t.out)
		fn(&t.out)
	}
}
