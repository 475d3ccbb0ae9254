package flow

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// EndReason says why a flow left the table.
type EndReason uint8

const (
	EndIdle    EndReason = iota // no packet for its inactivity timeout
	EndActive                   // open for ActiveTimeout: exported, and later packets start a new flow
	EndEvicted                  // the table was full; the least recently active flow made room
	EndFlushed                  // Flush, at shutdown or end of file
	EndClosed                   // TCP: Zeek's delay after a close or reset, or an unanswered attempt, ran out
	EndReused                   // TCP: a new SYN on the 5-tuple started another connection
	NumEndReasons
)

var endNames = [NumEndReasons]string{"idle", "active", "evicted", "flushed", "closed", "reused"}

func (r EndReason) String() string {
	if r < NumEndReasons {
		return endNames[r]
	}
	return "unknown"
}

// Timeouts are Zeek's inactivity timeouts per protocol and its TCP delays. A zero field takes
// Zeek's default (init-bare.zeek): ZeekTimeouts.
type Timeouts struct {
	TCP   time.Duration // tcp_inactivity_timeout: a TCP connection past its handshake
	UDP   time.Duration // udp_inactivity_timeout: UDP, and TCP still in its handshake, as in Zeek
	ICMP  time.Duration // icmp_inactivity_timeout
	Other time.Duration // unknown_ip_inactivity_timeout: any other IP protocol
	// TCPAttempt ends a connection whose SYN got no answer (tcp_attempt_delay); TCPClose ends a
	// connection after its close (tcp_close_delay), TCPReset after a RST that follows a FIN
	// (tcp_reset_delay).
	TCPAttempt, TCPClose, TCPReset time.Duration
}

// ZeekTimeouts are Zeek's defaults: 5 min for TCP, 1 min for UDP, ICMP and other protocols,
// and 5 s for each TCP delay.
func ZeekTimeouts() Timeouts {
	return Timeouts{
		TCP: 5 * time.Minute, UDP: time.Minute, ICMP: time.Minute, Other: time.Minute,
		TCPAttempt: 5 * time.Second, TCPClose: 5 * time.Second, TCPReset: 5 * time.Second,
	}
}

// Config sets the table's limits. Zero values take the defaults of `capfleet process`.
type Config struct {
	// IdleTimeout, when set, ends a flow of any protocol after this long without packets, in
	// place of Zeek's per-protocol inactivity timeouts (Timeouts).
	IdleTimeout   time.Duration
	Timeouts      Timeouts
	ActiveTimeout time.Duration // default 30m
	MaxFlows      int           // default 1,000,000
	// ServerPorts are the ports Zeek takes as a service's (likely_server_ports): a first packet
	// from one, not a SYN, makes its receiver the originator. Default ZeekServerPorts.
	ServerPorts *Ports
	// OnEnd receives every flow that leaves the table. The *Flow is reused afterwards.
	OnEnd func(f *Flow, why EndReason)
	// Features are the optional feature sets computed on every flow (Flow.CIC): none by default,
	// when a flow costs only its entry.
	Features Features
}

// Stats counts what the table did. Not synchronised, like the Table.
type Stats struct {
	Packets   uint64 // packets added to a flow
	NotIP     uint64 // packets without an IP header, ignored
	Fragments uint64 // non-first IP fragments: no ports, so no flow to add them to
	Created   uint64
	Ended     [NumEndReasons]uint64
}

// broadcast is the address Zeek never makes an originator by a guess.
var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Timeout classes: flows of one class share an inactivity timeout, so each class's LRU list
// expires from its head.
const (
	classTCP   = iota // TCP past its handshake
	classUDP          // UDP, and TCP in its handshake
	classICMP         // ICMP and ICMPv6
	classOther        // other IP protocols
	numClasses
)

type lruList struct{ head, tail *entry } // least recently active first

// delays are the TCP delays in nanoseconds.
type delays struct{ attempt, close, reset time.Duration }

// Table aggregates packets into flows. Time is the packets' own: timeouts are measured in
// capture time, so a file read offline expires flows as a live capture would have. Not safe
// for concurrent use: shard by flow (packetrecord.FlowHash) and give each shard a Table.
type Table struct {
	cfg     Config
	idle    [numClasses]time.Duration
	delays  delays
	ports   *Ports
	flows   map[lookupKey]*entry
	lru     [numClasses]lruList
	timers  []*entry // TCP flows with a Zeek timer pending, a min-heap by ext.due
	free    []*entry
	freeExt []*ext
	out     Flow // handed to OnEnd
	// cic holds the CICFlowMeter accumulators of each flow when Features asks for them: a side
	// table, so that an entry stays within its size class when they are off.
	cic     map[*entry]*cicFlow
	freeCIC []*cicFlow
	outCIC  CIC
	clock   int64 // the newest packet's time (Unix nanoseconds), 0 before the first
	// nextExpire is no later than the time something is next due to expire: Add skips Expire
	// until then.
	nextExpire int64
	Stats      Stats
}

// New returns an empty table.
func New(cfg Config) *Table {
	z := ZeekTimeouts()
	to := &cfg.Timeouts
	for _, d := range []struct{ v, def *time.Duration }{
		{&to.TCP, &z.TCP}, {&to.UDP, &z.UDP}, {&to.ICMP, &z.ICMP}, {&to.Other, &z.Other},
		{&to.TCPAttempt, &z.TCPAttempt}, {&to.TCPClose, &z.TCPClose}, {&to.TCPReset, &z.TCPReset},
	} {
		if *d.v <= 0 {
			*d.v = *d.def
		}
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
	if cfg.ServerPorts == nil {
		cfg.ServerPorts = ZeekServerPorts()
	}
	t := &Table{cfg: cfg, flows: make(map[lookupKey]*entry), ports: cfg.ServerPorts, nextExpire: math.MaxInt64}
	t.idle = [numClasses]time.Duration{classTCP: to.TCP, classUDP: to.UDP, classICMP: to.ICMP, classOther: to.Other}
	if cfg.IdleTimeout > 0 {
		t.idle = [numClasses]time.Duration{cfg.IdleTimeout, cfg.IdleTimeout, cfg.IdleTimeout, cfg.IdleTimeout}
	}
	t.delays = delays{attempt: to.TCPAttempt, close: to.TCPClose, reset: to.TCPReset}
	if cfg.Features&FeaturesCIC != 0 {
		t.cic = make(map[*entry]*cicFlow)
	}
	return t
}

// Len is the number of flows in the table.
func (t *Table) Len() int { return len(t.flows) }

// classOf is the timeout class of a flow of proto, TCP past its handshake or not.
func classOf(proto uint8, tcpPastHandshake bool) uint8 {
	switch proto {
	case decode.ProtoTCP:
		if tcpPastHandshake {
			return classTCP
		}
		return classUDP
	case decode.ProtoUDP:
		return classUDP
	case decode.ProtoICMP, decode.ProtoICMPv6:
		return classICMP
	}
	return classOther
}

// class is the timeout class of a flow (kept in its flags).
func (e *entry) class() int { return int(e.flags&classMask) >> classShift }

// lookupOf is the lookup key of a packet's flow; swapped says the packet's source is lookup.b.
// ok is false for a packet that makes no Zeek connection: a transport header that was not
// decoded, or IPv6's "no next header".
func lookupOf(p *decode.Packet, h *decode.IPHeader) (l lookupKey, swapped, ok bool) {
	l.proto, l.vlan = h.Proto, p.VLAN
	oneWay := false
	switch h.Proto {
	case decode.ProtoTCP, decode.ProtoUDP:
		if h.L4.Proto != h.Proto || h.L4.Short {
			return l, false, false
		}
		l.aPort, l.bPort = h.L4.SrcPort, h.L4.DstPort
	case decode.ProtoICMP, decode.ProtoICMPv6:
		if h.L4.Proto != h.Proto {
			return l, false, false
		}
		l.aPort, l.bPort, oneWay = icmpPorts(h.Proto == decode.ProtoICMPv6, h.L4.ICMPType, h.L4.ICMPCode)
	case 59: // IPv6 no next header: nothing to analyse (a Teredo bubble)
		return l, false, false
	}
	l.a, l.b, l.v4 = h.Src.As16(), h.Dst.As16(), h.Src.Is4()
	if !oneWay {
		// Canonical order: the smaller address (then port) first, so both directions find it.
		a0, b0 := binary.BigEndian.Uint64(l.a[:8]), binary.BigEndian.Uint64(l.b[:8])
		a1, b1 := binary.BigEndian.Uint64(l.a[8:]), binary.BigEndian.Uint64(l.b[8:])
		if a0 > b0 || (a0 == b0 && (a1 > b1 || (a1 == b1 && l.aPort > l.bPort))) {
			l.a, l.b, l.aPort, l.bPort = l.b, l.a, l.bPort, l.aPort
			swapped = true
		}
	}
	return l, swapped, true
}

// Add accounts one decoded packet, first ending the flows its timestamp has timed out. As in
// Zeek, the packet counts in the connection of its innermost 5-tuple and, when it came through
// tunnels carried in UDP (VXLAN, Geneve, GTP, Teredo, AYIYA), in each of theirs.
func (t *Table) Add(p *decode.Packet) {
	in := -1
	for i := int(p.NIP) - 1; i >= 0; i-- {
		if h := &p.IP[i]; !h.Quoted && h.Partial == 0 {
			in = i
			break
		}
	}
	if in < 0 {
		t.Stats.NotIP++
		return
	}
	ns := p.Timestamp.UnixNano()
	if ns > t.clock {
		t.clock = ns
		if ns >= t.nextExpire {
			t.expire(ns)
		}
	}
	for i := 0; i < in; i++ {
		h := &p.IP[i]
		if h.Quoted || h.Partial != 0 {
			continue
		}
		if h.BadChecksum {
			return // Zeek drops an IP packet whose header checksum is wrong, and what it carries
		}
		if h.Proto == decode.ProtoUDP && h.L4.Proto == decode.ProtoUDP {
			t.addLayer(p, h, -1, ns)
			if h.L4.BadChecksum {
				return // nor does it open a tunnel whose UDP checksum is wrong
			}
		}
	}
	h := &p.IP[in]
	if h.BadChecksum {
		return
	}
	if h.Fragment && h.FragOffset != 0 {
		t.Stats.Fragments++
		return
	}
	t.addLayer(p, h, in, ns)
	t.Stats.Packets++
}

// addLayer accounts the packet in the connection of one of its IP headers; inner is the index
// of the innermost header (whose encapsulation the flow records), or -1 for a tunnel's own.
func (t *Table) addLayer(p *decode.Packet, h *decode.IPHeader, inner int, now int64) {
	lk, swapped, ok := lookupOf(p, h)
	if !ok {
		return
	}
	f := t.flows[lk]
	if f != nil {
		if now-f.first >= int64(t.cfg.ActiveTimeout) {
			t.end(f, EndActive)
			f = nil
		} else if h.Proto == decode.ProtoTCP && h.L4.Flags&decode.TCPSyn != 0 && tcpReuse(f, &h.L4) {
			t.end(f, EndReused)
			f = nil
		}
	}
	created := f == nil
	if created {
		f = t.create(lk, swapped, now, h)
	}
	side := 0
	if swapped {
		side = 1
	}
	fromOrig := side == f.origSide()
	if lk.a == lk.b && lk.aPort == lk.bPort {
		// A host talking to itself on one port: one direction only, the originator's.
		side, fromOrig = f.origSide(), true
	}
	if inner > 0 || (f.ext != nil && f.ext.tunnelID != 0) {
		t.noteTunnel(f, p, inner, fromOrig, created)
	}
	t.account(f, side, fromOrig, h, p, now)
	if t.cic != nil {
		t.addCIC(f, side, created, h, now)
	}
	// last orders the LRU lists and times idling: every packet moves it, even one Zeek does not
	// count (TCP keeps Zeek's last time apart, for its duration and delays).
	f.last = max(f.last, now)
	f.dirty = true
	t.touch(f)
}

func (t *Table) create(lk lookupKey, swapped bool, now int64, h *decode.IPHeader) *entry {
	if len(t.flows) >= t.cfg.MaxFlows {
		if lru := t.leastRecent(); lru != nil {
			t.end(lru, EndEvicted)
		}
	}
	var f *entry
	if n := len(t.free); n > 0 {
		f, t.free = t.free[n-1], t.free[:n-1]
		*f = entry{}
	} else if h.Proto == decode.ProtoTCP && len(t.freeExt) == 0 {
		// A TCP flow needs both: one allocation, not two.
		both := &struct {
			e entry
			x ext
		}{}
		f = &both.e
		t.freeExt = append(t.freeExt, &both.x)
	} else {
		f = &entry{}
	}
	f.lookup, f.origIsB = lk, swapped
	f.first, f.last = now, now
	f.flags = classOf(h.Proto, false) << classShift
	if h.Proto == decode.ProtoTCP {
		t.giveExt(f)
	}
	// Zeek's guess of the originator when the first packet does not say: a TCP connection
	// that starts without a SYN (or with a SYN-ACK), or any UDP flow, from a service port.
	sport, dport := h.L4.SrcPort, h.L4.DstPort
	flip := false
	switch h.Proto {
	case decode.ProtoTCP:
		syn, ack := h.L4.Flags&decode.TCPSyn != 0, h.L4.Flags&decode.TCPAck != 0
		if (!syn || ack) && t.ports.Has(decode.ProtoTCP, sport) {
			if t.ports.Has(decode.ProtoTCP, dport) {
				flip = !syn && sport < dport // both plausible: favour the lower port as the service
			} else {
				flip = true
			}
		}
	case decode.ProtoUDP:
		flip = t.ports.Has(decode.ProtoUDP, sport) && !t.ports.Has(decode.ProtoUDP, dport)
	}
	if flip && h.Dst != broadcast {
		t.flip(f)
	}
	t.flows[lk] = f
	t.Stats.Created++
	return f
}

// flip swaps the originator and responder, as Zeek's FlipRoles, marking it in the history.
func (t *Table) flip(f *entry) {
	f.origIsB = !f.origIsB
	f.flags |= flipped
	f.addHistory('^')
}

// giveExt attaches an ext to f.
func (t *Table) giveExt(f *entry) *ext {
	if f.ext != nil {
		return f.ext
	}
	var x *ext
	if n := len(t.freeExt); n > 0 {
		x, t.freeExt = t.freeExt[n-1], t.freeExt[:n-1]
		*x = ext{}
	} else {
		x = &ext{}
	}
	x.heapIdx, x.active = -1, true
	f.ext = x
	return x
}

// account updates the counters, state and history of f with one packet from side.
func (t *Table) account(f *entry, side int, fromOrig bool, h *decode.IPHeader, p *decode.Packet, now int64) {
	ep := &f.ep[side]
	ipLen := uint64(max(h.TotalLen, 0))
	l4 := &h.L4
	if l4.BadChecksum {
		// Zeek makes the connection but does not count the packet; TCP and UDP note it in the
		// history, scaled.
		if h.Proto == decode.ProtoTCP || h.Proto == decode.ProtoUDP {
			f.scaledHistory(&t.giveExt(f).tcp[side].chk, 'c', fromOrig)
		}
		return
	}
	switch h.Proto {
	case decode.ProtoTCP:
		if l4.BadOffset {
			return // Zeek made the connection but cannot read the segment: it is not counted
		}
		ep.Flags |= l4.Flags
		t.tcpPacket(f, side, h, now)
	case decode.ProtoUDP:
		f.checkHistory(histData, 'd', fromOrig)
		ep.bits |= epActive
		ep.count += uint64(max(int(l4.UDPLen)-8, 0))
	case decode.ProtoICMP, decode.ProtoICMPv6:
		ep.bits |= epActive
		ep.count += uint64(max(h.TotalLen-h.HeaderLen-8, 0))
		if p.CapLen < p.Len {
			return // Zeek counts an ICMP message only when it was captured whole
		}
	default:
		ep.count += uint64(max(h.TotalLen-h.HeaderLen, 0))
	}
	ep.Pkts++
	ep.IPBytes += ipLen
}

// noteTunnel follows the encapsulation of f's packets: the innermost header, at index in, and
// the IP header around it (none when in is 0). The first tunnel seen is the flow's; a packet in
// another encapsulation than the one before it (another tunnel connection, or none) is a change,
// which Zeek counts up to maxTunnelChanges and then notes in the history. created says the packet
// made the flow.
func (t *Table) noteTunnel(f *entry, p *decode.Packet, in int, fromOrig, created bool) {
	outer := -1
	for i := in - 1; i >= 0; i-- {
		if !p.IP[i].Quoted && p.IP[i].Partial == 0 {
			outer = i
			break
		}
	}
	var k tunnelKey
	id := uint32(0) // the encapsulation's identity, 0 for none
	if outer >= 0 {
		o := &p.IP[outer]
		k = tunnelKey{src: o.Src.As16(), dst: o.Dst.As16(), v4: o.Src.Is4(), typ: tunnelType(p, o)}
		if o.Proto == decode.ProtoUDP && o.L4.Proto == decode.ProtoUDP {
			k.srcPort, k.dstPort = o.L4.SrcPort, o.L4.DstPort
		}
		id = k.identity()
		if k.typ == decode.TunnelGRE || k.typ == decode.TunnelIPinIP {
			// Zeek knows an IP tunnel by its addresses alone, even when UDP carries it.
			bare := k
			bare.srcPort, bare.dstPort = 0, 0
			id = bare.identity()
		}
	}
	x := f.ext
	cur := uint32(0)
	if x != nil {
		cur = x.tunnelID
	}
	if id == cur {
		return
	}
	x = t.giveExt(f)
	if id != 0 && x.tunnel.typ == decode.TunnelNone {
		x.tunnel = k
	}
	x.tunnelID = id
	if created {
		return
	}
	if x.tunnel.changes == maxTunnelChanges {
		// Zeek reports this many changes, then notes in the history that it stopped.
		c := byte('x')
		if fromOrig {
			c = 'X'
		}
		f.addHistory(c)
	}
	if x.tunnel.changes < 255 {
		x.tunnel.changes++
	}
}

// maxTunnelChanges is Zeek's Tunnel::max_changes_per_connection.
const maxTunnelChanges = 5

// tunnelType names the encapsulation an outer header opens.
func tunnelType(p *decode.Packet, o *decode.IPHeader) decode.Tunnel {
	switch o.Proto {
	case 47:
		return decode.TunnelGRE
	case 4, 41:
		return decode.TunnelIPinIP
	case decode.ProtoUDP:
		for _, port := range [2]uint16{o.L4.DstPort, o.L4.SrcPort} {
			switch port {
			case 4789:
				return decode.TunnelVXLAN
			case 6081:
				return decode.TunnelGeneve
			case 2152:
				return decode.TunnelGTP
			case 3544:
				return decode.TunnelTeredo
			case 5072:
				return decode.TunnelAYIYA
			case 4754:
				return decode.TunnelGRE
			}
		}
	}
	if p.Tunnel != decode.TunnelNone {
		return p.Tunnel
	}
	return decode.TunnelIPinIP
}

// touch moves f to the most-recently-active end of its class's LRU list.
func (t *Table) touch(f *entry) {
	l := &t.lru[f.class()]
	if l.tail == f {
		return
	}
	t.unlinkLRU(f)
	f.lruPrev = l.tail
	if l.tail != nil {
		l.tail.lruNext = f
	} else {
		l.head = f
	}
	l.tail = f
	if l.head == f {
		t.nextExpire = min(t.nextExpire, f.last+int64(t.idle[f.class()]))
	}
}

func (t *Table) unlinkLRU(f *entry) {
	l := &t.lru[f.class()]
	if f.lruPrev != nil {
		f.lruPrev.lruNext = f.lruNext
	} else if l.head == f {
		l.head = f.lruNext
	}
	if f.lruNext != nil {
		f.lruNext.lruPrev = f.lruPrev
	} else if l.tail == f {
		l.tail = f.lruPrev
	}
	f.lruPrev, f.lruNext = nil, nil
}

// leastRecent is the flow that has been idle longest, of all classes.
func (t *Table) leastRecent() *entry {
	var lru *entry
	for c := range t.lru {
		if h := t.lru[c].head; h != nil && (lru == nil || h.last < lru.last) {
			lru = h
		}
	}
	return lru
}

// end removes f, hands it to the callback and recycles it.
func (t *Table) end(f *entry, why EndReason) {
	delete(t.flows, f.lookup)
	t.unlinkLRU(f)
	if x := f.ext; x != nil && x.heapIdx >= 0 {
		t.heapRemove(f)
	}
	t.Stats.Ended[why]++
	t.flowOf(f)
	t.cfg.OnEnd(&t.out, why)
	if t.cic != nil {
		t.dropCIC(f)
	}
	if f.ext != nil {
		t.freeExt = append(t.freeExt, f.ext)
		f.ext = nil
	}
	t.free = append(t.free, f)
}

// Expire ends the flows whose Zeek timers ran out or that were idle for their inactivity
// timeout at now. Add calls it as packet time advances; call it on a timer too if the packet
// stream can pause. A flow open for ActiveTimeout ends when its next packet comes (which starts
// a new flow), as NetFlow exporters do: a flow that sends nothing more ends by idling instead.
func (t *Table) Expire(now time.Time) {
	ns := now.UnixNano()
	t.clock = max(t.clock, ns)
	if ns >= t.nextExpire {
		t.expire(ns)
	}
}

// expire ends what is due at now and works out when something is next due.
func (t *Table) expire(ns int64) {
	for len(t.timers) > 0 && t.timers[0].ext.due <= ns {
		f := t.timers[0]
		if t.tcpTimers(f, ns) {
			t.end(f, EndClosed)
		} else {
			t.reschedule(f)
		}
	}
	next := int64(math.MaxInt64)
	for c := range t.lru {
		idle := int64(t.idle[c])
		f := t.lru[c].head
		for ; f != nil && ns-f.last >= idle; f = t.lru[c].head {
			t.end(f, EndIdle)
		}
		if f != nil {
			next = min(next, f.last+idle)
		}
	}
	if len(t.timers) > 0 {
		next = min(next, t.timers[0].ext.due)
	}
	t.nextExpire = next
}

// Latest is the time of the newest packet in an open flow (zero when none is open): a table restored
// from a checkpoint has no other clock until its next packet.
func (t *Table) Latest() time.Time {
	var latest int64
	found := false
	for c := range t.lru {
		if tl := t.lru[c].tail; tl != nil && (!found || tl.last > latest) {
			latest, found = tl.last, true
		}
	}
	if !found {
		return time.Time{}
	}
	return time.Unix(0, latest)
}

// Flush ends every flow, least recently active first.
func (t *Table) Flush() {
	for f := t.leastRecent(); f != nil; f = t.leastRecent() {
		t.end(f, EndFlushed)
	}
}

// Dirty hands fn each open flow changed since the last call (or since New), most recently active
// first within each timeout class, for a consumer that writes running totals of open flows. Every
// change moves a flow to the recent end of its LRU list, so the changed flows are the lists'
// tails: the walk costs what it returns, not the table's size.
func (t *Table) Dirty(fn func(f *Flow)) {
	for c := range t.lru {
		for f := t.lru[c].tail; f != nil && f.dirty; f = f.lruPrev {
			f.dirty = false
			t.flowOf(f)
			fn(&t.out)
		}
	}
}

// flowOf fills t.out from f, with its features.
func (t *Table) flowOf(f *entry) {
	f.flow(&t.out)
	if c := t.cic[f]; c != nil {
		c.row(&f.lookup, &t.outCIC)
		t.out.CIC = &t.outCIC
	}
}

// addCIC accounts a packet in the CICFlowMeter features of f; created says it opened the flow,
// which makes its sender CICFlowMeter's forward side.
func (t *Table) addCIC(f *entry, side int, created bool, h *decode.IPHeader, now int64) {
	c := t.cic[f]
	if created || c == nil {
		if c == nil {
			if n := len(t.freeCIC); n > 0 {
				c, t.freeCIC = t.freeCIC[n-1], t.freeCIC[:n-1]
			} else {
				c = new(cicFlow)
			}
			t.cic[f] = c
		}
		c.reset(side, now)
	}
	c.add(side, now, cicPacketOf(h))
}

// dropCIC recycles the features of a flow that ended.
func (t *Table) dropCIC(f *entry) {
	if c := t.cic[f]; c != nil {
		delete(t.cic, f)
		t.freeCIC = append(t.freeCIC, c)
	}
}
