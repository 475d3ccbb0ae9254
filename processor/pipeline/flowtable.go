package pipeline

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// FlowConfig is the flow aggregation of the pipeline spec.
type FlowConfig struct {
	IdleTimeout   time.Duration
	ActiveTimeout time.Duration
	MaxFlows      int // per Kafka partition
}

// Validate rejects settings that would make every packet its own flow or keep flows forever.
func (c FlowConfig) Validate() error {
	switch {
	case c.IdleTimeout <= 0:
		return fmt.Errorf("--flow-idle-timeout %s: must be positive", c.IdleTimeout)
	case c.ActiveTimeout <= 0:
		return fmt.Errorf("--flow-active-timeout %s: must be positive", c.ActiveTimeout)
	case c.MaxFlows <= 0:
		return fmt.Errorf("--flow-table-max %d: must be positive", c.MaxFlows)
	}
	return nil
}

// NewFlowTableFactory returns Deps.NewFlowTable for cfg; evictions are counted in c.
func NewFlowTableFactory(cfg FlowConfig, c *Counters) func(state []byte, emit func(store.Flow)) (FlowTable, error) {
	return func(state []byte, emit func(store.Flow)) (FlowTable, error) {
		t := &flowTable{cfg: cfg, emit: emit, flows: map[flowKey]*flowEntry{}, counters: c, age: entryList{i: 1}}
		if state != nil {
			if err := t.unmarshal(state); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
}

// flowKey is direction-free: the lower endpoint first, so both directions find one entry.
type flowKey struct {
	vlan   [2]uint16 // outer and inner tag
	proto  uint8
	lo, hi netip.AddrPort
}

// flowEntry is one open flow. Exported fields are its checkpointed state.
type flowEntry struct {
	Flow        store.Flow // key, times, uid, community id, history; totals are filled from the sides
	Orig, Resp  Side
	OrigIsLo    bool
	InnerVLAN   uint16 // part of the key; the stored record keeps the outer tag
	HistorySeen uint64 // bit per (letter, direction) already in the history
	Dirty       bool

	key        flowKey
	prev, next [2]*flowEntry // lru and age links
}

// flowTable aggregates the flows of one partition by packet time.
//
// It keys, times out and counts flows as processor/flow does (what `capfleet pcap flows` runs; a parity
// test holds them to the same flows, packets, IP bytes, Community IDs and uids on real captures), but it
// keeps its whole state in exported fields so that a checkpoint can serialize it and a restarted
// consumer resume it: processor/flow's Table neither lists its open flows nor exports their state.
// The accounting (TCP endpoint states, sequence-space bytes, history rules) follows processor/flow's,
// field for field; the parity test is what keeps the two from drifting apart.
type flowTable struct {
	cfg      FlowConfig
	emit     func(store.Flow)
	flows    map[flowKey]*flowEntry
	lru      entryList // by last packet, least recent first: idle expiry and eviction
	age      entryList // by first packet, oldest first: active expiry
	counters *Counters
}

// entryList is an intrusive doubly linked list of entries; which links it uses is set by its index.
type entryList struct {
	head, tail *flowEntry
	i          int // 0: lru links, 1: age links
}

func (l *entryList) pushBack(e *flowEntry) {
	e.prev[l.i], e.next[l.i] = l.tail, nil
	if l.tail != nil {
		l.tail.next[l.i] = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *entryList) remove(e *flowEntry) {
	if p := e.prev[l.i]; p != nil {
		p.next[l.i] = e.next[l.i]
	} else {
		l.head = e.next[l.i]
	}
	if n := e.next[l.i]; n != nil {
		n.prev[l.i] = e.prev[l.i]
	} else {
		l.tail = e.prev[l.i]
	}
	e.prev[l.i], e.next[l.i] = nil, nil
}

func (t *flowTable) Len() int { return len(t.flows) }

func (t *flowTable) Add(p *decode.Packet) {
	h, ok := p.Inner()
	if !ok || !h.Src.IsValid() {
		return
	}
	proto := h.Proto
	var sp, dp uint16
	oneWay := false
	if !h.Fragment || h.FragOffset == 0 {
		switch h.L4.Proto {
		case decode.ProtoTCP, decode.ProtoUDP, decode.ProtoSCTP:
			sp, dp = h.L4.SrcPort, h.L4.DstPort
		case decode.ProtoICMP, decode.ProtoICMPv6:
			// As the Community ID spec (and processor/flow) pair them: a request and its reply are
			// one flow; other messages are one-way.
			sp, dp, oneWay = icmpPorts(h.L4.Proto, uint16(h.L4.ICMPType), uint16(h.L4.ICMPCode))
		}
	}
	k := flowKey{vlan: p.VLAN, proto: proto}
	src, dst := netip.AddrPortFrom(h.Src.Unmap(), sp), netip.AddrPortFrom(h.Dst.Unmap(), dp)
	srcIsLo := oneWay || src.Compare(dst) <= 0
	if srcIsLo {
		k.lo, k.hi = src, dst
	} else {
		k.lo, k.hi = dst, src
	}
	ts := p.Timestamp
	e := t.flows[k]
	if e != nil && (ts.Sub(e.Flow.End) >= t.cfg.IdleTimeout || ts.Sub(e.Flow.Start) >= t.cfg.ActiveTimeout) {
		t.close(k, e)
		e = nil
	}
	if e == nil {
		if len(t.flows) >= t.cfg.MaxFlows {
			t.Expire(ts)
			if len(t.flows) >= t.cfg.MaxFlows {
				t.evictOldest()
			}
		}
		orig, resp, origIsLo, history := src, dst, srcIsLo, ""
		// A first packet that is a SYN-ACK comes from the responder: the roles swap, as in Zeek ('^').
		if h.Proto == decode.ProtoTCP && h.L4.Proto == decode.ProtoTCP && h.L4.Flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn|decode.TCPAck {
			orig, resp, origIsLo, history = dst, src, !srcIsLo, "^"
		}
		e = &flowEntry{OrigIsLo: origIsLo, InnerVLAN: p.VLAN[1], Flow: store.Flow{
			Start: ts, End: ts, Proto: proto, VLAN: p.VLAN[0], History: history,
			OrigAddr: orig.Addr(), OrigPort: orig.Port(), RespAddr: resp.Addr(), RespPort: resp.Port(),
		}}
		// Named exactly as processor/flow names it, so `capfleet pcap flows` and `capfleet query flows`
		// give one connection the same uid.
		key := flow.Key{Orig: orig.Addr(), Resp: resp.Addr(), OrigPort: orig.Port(), RespPort: resp.Port(), Proto: proto, VLAN: p.VLAN}
		named := flow.Flow{Key: key, First: ts}
		e.Flow.UID, e.Flow.CommunityID = named.UID(), named.CommunityID()
		e.key = k
		t.flows[k] = e
		t.age.pushBack(e)
	} else {
		t.lru.remove(e)
	}
	t.lru.pushBack(e)
	if ts.After(e.Flow.End) {
		e.Flow.End = ts
	}
	fromOrig := srcIsLo == e.OrigIsLo
	if src == dst {
		fromOrig = true // a host talking to itself on one port: one direction
	}
	e.account(h, fromOrig)
	e.Dirty = true
}

// Side is what one endpoint of a flow sent, in the terms of Zeek's conn.log.
type Side struct {
	Pkts, IPBytes uint64
	Payload       uint64 // UDP and ICMP payload, and other protocols' IP payload
	Flags         uint16
	State         uint8 // tcp* below
	SeqStarted    bool
	DidSYN        bool
	FinSeen       bool
	StartSeq      uint32
	MaxEnd        uint64 // highest sequence offset reached, relative to StartSeq
}

// TCP endpoint states, as Zeek's analyzer tracks them.
const (
	tcpInactive uint8 = iota
	tcpSynSent
	tcpSynAckSent
	tcpPartial
	tcpEstablished
	tcpClosed
	tcpReset
)

// account adds one packet to the side that sent it, following Zeek's conn.log accounting (as
// processor/flow does): TCP bytes are the sequence space covered, so a retransmission counts once.
func (e *flowEntry) account(h *decode.IPHeader, fromOrig bool) {
	ep, peer := &e.Orig, &e.Resp
	if !fromOrig {
		ep, peer = peer, ep
	}
	ep.Pkts++
	ep.IPBytes += uint64(max(h.TotalLen, 0))
	l4 := &h.L4
	switch {
	case h.Proto == decode.ProtoTCP && l4.Proto == decode.ProtoTCP:
		ep.Flags |= l4.Flags
		ep.trackSeq(l4.Seq, l4.PayloadLen, l4.Flags)
		ep.transition(peer, l4.Flags)
		e.tcpHistory(l4, fromOrig)
	case h.Proto == decode.ProtoUDP && l4.Proto == decode.ProtoUDP:
		ep.Payload += uint64(max(l4.PayloadLen, 0))
		if l4.PayloadLen > 0 {
			e.mark('d', fromOrig)
		}
	case h.Proto == decode.ProtoICMP || h.Proto == decode.ProtoICMPv6:
		ep.Payload += uint64(max(h.TotalLen-h.HeaderLen-8, 0))
	default:
		ep.Payload += uint64(max(h.TotalLen-h.HeaderLen, 0))
	}
}

// trackSeq extends the sequence space the side covered; a segment starting before what was seen is a
// retransmission (or reordering) and adds only its new tail.
func (s *Side) trackSeq(seq uint32, payload int, flags uint16) {
	if !s.SeqStarted {
		s.SeqStarted, s.StartSeq = true, seq
	}
	rel := seq - s.StartSeq
	if rel > 1<<31 {
		return
	}
	end := uint64(rel) + uint64(max(payload, 0))
	if flags&decode.TCPSyn != 0 {
		s.DidSYN = true
		end++
	}
	if flags&decode.TCPFin != 0 {
		s.FinSeen = true
		end++
	}
	s.MaxEnd = max(s.MaxEnd, end)
}

// bytes is orig_bytes or resp_bytes: for TCP the sequence space less the SYN and FIN it holds.
func (s *Side) bytes(proto uint8) uint64 {
	if proto != decode.ProtoTCP {
		return s.Payload
	}
	n := s.MaxEnd
	if s.DidSYN && n > 0 {
		n--
	}
	if s.FinSeen && n > 0 {
		n--
	}
	return n
}

func (s *Side) transition(peer *Side, flags uint16) {
	syn, ack := flags&decode.TCPSyn != 0, flags&decode.TCPAck != 0
	switch {
	case flags&decode.TCPRst != 0:
		s.State = tcpReset
	case flags&decode.TCPFin != 0:
		s.State = tcpClosed
	case syn && ack:
		if s.State == tcpInactive || s.State == tcpPartial || s.State == tcpSynSent {
			s.State = tcpSynAckSent
		}
	case syn:
		if s.State == tcpInactive || s.State == tcpPartial {
			s.State = tcpSynSent
		}
	case s.State == tcpInactive:
		s.State = tcpPartial
	case (s.State == tcpSynSent || s.State == tcpSynAckSent) && ack && peer.State != tcpInactive:
		s.State = tcpEstablished
		if peer.State == tcpSynAckSent || peer.State == tcpSynSent {
			peer.State = tcpEstablished
		}
	}
}

func (e *flowEntry) tcpHistory(l4 *decode.Transport, fromOrig bool) {
	fl := l4.Flags
	syn, ack, fin, rst := fl&decode.TCPSyn != 0, fl&decode.TCPAck != 0, fl&decode.TCPFin != 0, fl&decode.TCPRst != 0
	switch {
	case syn && (fin || rst):
		e.mark('q', fromOrig)
	case syn && ack:
		e.mark('h', fromOrig)
	case syn:
		e.mark('s', fromOrig)
	}
	if l4.PayloadLen > 0 {
		e.mark('d', fromOrig)
	}
	if fin {
		e.mark('f', fromOrig)
	}
	if rst {
		e.mark('r', fromOrig)
	}
	if ack && !syn && !fin && !rst && l4.PayloadLen <= 0 {
		e.mark('a', fromOrig)
	}
}

// maxHistory bounds the history string, as processor/flow does.
const maxHistory = 32

// mark records a history event (a lower-case letter) once per direction; upper case from the originator.
func (e *flowEntry) mark(c byte, fromOrig bool) {
	bit := uint64(1) << (c - 'a')
	if fromOrig {
		bit <<= 32
		c -= 'a' - 'A'
	}
	if e.HistorySeen&bit != 0 || len(e.Flow.History) >= maxHistory {
		return
	}
	e.HistorySeen |= bit
	e.Flow.History += string(c)
}

// record fills the flow's totals and Zeek conn_state from the sides.
func (e *flowEntry) record() store.Flow {
	f := e.Flow
	f.OrigPkts, f.RespPkts = e.Orig.Pkts, e.Resp.Pkts
	f.OrigIPBytes, f.RespIPBytes = e.Orig.IPBytes, e.Resp.IPBytes
	f.OrigBytes, f.RespBytes = e.Orig.bytes(f.Proto), e.Resp.bytes(f.Proto)
	f.TCPFlags = uint8(e.Orig.Flags | e.Resp.Flags)
	f.State = e.connState()
	return f
}

func (e *flowEntry) connState() string {
	os, rs := e.Orig.State, e.Resp.State
	switch e.Flow.Proto {
	case decode.ProtoTCP:
		oInactive := os == tcpInactive || os == tcpPartial
		rInactive := rs == tcpInactive || rs == tcpPartial
		switch {
		case rs == tcpReset:
			if os == tcpSynSent || os == tcpSynAckSent ||
				(os == tcpReset && e.Orig.bytes(decode.ProtoTCP) == 0 && e.Resp.bytes(decode.ProtoTCP) == 0) {
				return "REJ"
			}
			if oInactive {
				return "RSTRH"
			}
			return "RSTR"
		case os == tcpReset:
			if rInactive {
				return "RSTOS0"
			}
			return "RSTO"
		case os == tcpClosed && rs == tcpClosed:
			return "SF"
		case os == tcpClosed:
			if rInactive {
				return "SH"
			}
			return "S2"
		case rs == tcpClosed:
			if oInactive {
				return "SHR"
			}
			return "S3"
		case os == tcpSynSent && rs == tcpInactive:
			return "S0"
		case os == tcpEstablished && rs == tcpEstablished:
			return "S1"
		}
		return "OTH"
	case decode.ProtoUDP:
		switch o, r := e.Orig.Pkts > 0, e.Resp.Pkts > 0; {
		case o && r:
			return "SF"
		case o:
			return "S0"
		case r:
			return "SHR"
		}
	}
	return "OTH"
}

func (t *flowTable) close(k flowKey, e *flowEntry) {
	delete(t.flows, k)
	t.lru.remove(e)
	t.age.remove(e)
	f := e.record()
	f.Closed = true
	t.emit(f)
}

// Expire closes the flows whose timeouts passed at now, at the cost of the flows it closes.
func (t *flowTable) Expire(now time.Time) {
	for e := t.lru.head; e != nil && now.Sub(e.Flow.End) >= t.cfg.IdleTimeout; e = t.lru.head {
		t.close(e.key, e)
	}
	for e := t.age.head; e != nil && now.Sub(e.Flow.Start) >= t.cfg.ActiveTimeout; e = t.age.head {
		t.close(e.key, e)
	}
}

// evictOldest closes the least recently active flow early, to keep the table bound.
func (t *flowTable) evictOldest() {
	if e := t.lru.head; e != nil {
		t.close(e.key, e)
		if t.counters != nil {
			t.counters.FlowsEvicted.Add(1)
		}
	}
}

// Flush closes every open flow, oldest first (for an offline run).
func (t *flowTable) Flush() {
	for e := t.age.head; e != nil; e = t.age.head {
		t.close(e.key, e)
	}
}

func (t *flowTable) Dirty() []store.Flow {
	var out []store.Flow
	for _, e := range t.flows {
		if e.Dirty {
			out = append(out, e.record())
			e.Dirty = false
		}
	}
	return out
}

// The checkpoint format: a version byte, the flow count, then each flow as
// varints and length-prefixed bytes (see putEntry). A hand-written format: gob spends 7 µs a flow on
// reflection, and a checkpoint holds every open flow of a partition.
const flowStateVersion = 4

func (t *flowTable) MarshalState() ([]byte, error) {
	b := make([]byte, 0, 16+len(t.flows)*120)
	b = append(b, flowStateVersion)
	b = binary.AppendUvarint(b, uint64(len(t.flows)))
	// In least-recently-active order: reading back rebuilds the eviction order exactly.
	for e := t.lru.head; e != nil; e = e.next[0] {
		b = putEntry(b, e)
	}
	return b, nil
}

func putEntry(b []byte, e *flowEntry) []byte {
	f := &e.Flow
	b = appendString(b, f.UID)
	b = appendString(b, f.CommunityID)
	b = binary.AppendVarint(b, f.Start.UnixNano())
	b = binary.AppendVarint(b, f.End.UnixNano())
	b = append(b, f.Proto)
	b = binary.AppendUvarint(b, uint64(f.VLAN))
	b = binary.AppendUvarint(b, uint64(e.InnerVLAN))
	b = appendString(b, string(f.OrigAddr.AsSlice()))
	b = binary.AppendUvarint(b, uint64(f.OrigPort))
	b = appendString(b, string(f.RespAddr.AsSlice()))
	b = binary.AppendUvarint(b, uint64(f.RespPort))
	b = appendString(b, f.History)
	b = binary.AppendUvarint(b, e.HistorySeen)
	var flags byte
	if e.OrigIsLo {
		flags |= 1
	}
	if e.Dirty {
		flags |= 2
	}
	b = append(b, flags)
	for _, s := range []*Side{&e.Orig, &e.Resp} {
		b = binary.AppendUvarint(b, s.Pkts)
		b = binary.AppendUvarint(b, s.IPBytes)
		b = binary.AppendUvarint(b, s.Payload)
		b = binary.AppendUvarint(b, uint64(s.Flags))
		var sf byte
		if s.SeqStarted {
			sf |= 1
		}
		if s.DidSYN {
			sf |= 2
		}
		if s.FinSeen {
			sf |= 4
		}
		b = append(b, s.State, sf)
		b = binary.AppendUvarint(b, uint64(s.StartSeq))
		b = binary.AppendUvarint(b, s.MaxEnd)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// stateReader reads the checkpoint format; the first error sticks and later reads return zeros.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("flow checkpoint: %s", what)
	}
}

func (r *stateReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) byte1(what string) byte {
	if len(r.b) == 0 {
		r.fail(what + " cut short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *stateReader) bytesN(what string) []byte {
	n := r.uvarint(what + " length")
	if n > uint64(len(r.b)) {
		r.fail(what + " cut short")
		return nil
	}
	v := r.b[:n]
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

func (r *stateReader) addr(what string) netip.Addr {
	a, ok := netip.AddrFromSlice(r.bytesN(what))
	if !ok {
		r.fail("bad " + what)
	}
	return a
}

func (t *flowTable) unmarshal(b []byte) error {
	r := &stateReader{b: b}
	if v := r.byte1("version"); r.err == nil && v != flowStateVersion {
		return fmt.Errorf("flow checkpoint version %d, this build reads %d", v, flowStateVersion)
	}
	n := r.uvarint("flow count")
	var restored []*flowEntry
	if n > uint64(len(b)) { // every flow takes more than a byte: a count beyond the size is corrupt
		r.fail("flow count beyond the data")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e := &flowEntry{}
		f := &e.Flow
		f.UID = string(r.bytesN("uid"))
		f.CommunityID = string(r.bytesN("community id"))
		f.Start = time.Unix(0, r.varint("start"))
		f.End = time.Unix(0, r.varint("end"))
		f.Proto = r.byte1("proto")
		f.VLAN = r.u16("vlan")
		e.InnerVLAN = r.u16("inner vlan")
		f.OrigAddr = r.addr("orig address")
		f.OrigPort = r.u16("orig port")
		f.RespAddr = r.addr("resp address")
		f.RespPort = r.u16("resp port")
		f.History = string(r.bytesN("history"))
		e.HistorySeen = r.uvarint("history bits")
		flags := r.byte1("flags")
		e.OrigIsLo, e.Dirty = flags&1 != 0, flags&2 != 0
		for _, s := range []*Side{&e.Orig, &e.Resp} {
			s.Pkts = r.uvarint("packets")
			s.IPBytes = r.uvarint("ip bytes")
			s.Payload = r.uvarint("payload")
			s.Flags = r.u16("tcp flags")
			s.State = r.byte1("tcp state")
			sf := r.byte1("seq flags")
			s.SeqStarted, s.DidSYN, s.FinSeen = sf&1 != 0, sf&2 != 0, sf&4 != 0
			s.StartSeq = uint32(r.uvarint("start seq"))
			s.MaxEnd = r.uvarint("max end")
		}
		if r.err != nil {
			break
		}
		o, rs := netip.AddrPortFrom(f.OrigAddr, f.OrigPort), netip.AddrPortFrom(f.RespAddr, f.RespPort)
		k := flowKey{vlan: [2]uint16{f.VLAN, e.InnerVLAN}, proto: f.Proto, lo: o, hi: rs}
		if !e.OrigIsLo {
			k.lo, k.hi = rs, o
		}
		if _, dup := t.flows[k]; dup {
			r.fail("flow " + f.UID + " twice")
			break
		}
		e.key = k
		t.flows[k] = e
		t.lru.pushBack(e)
		restored = append(restored, e)
	}
	// The age order is creation order: by first packet, ties in the order the flows were read.
	slices.SortStableFunc(restored, func(a, b *flowEntry) int { return a.Flow.Start.Compare(b.Flow.Start) })
	for _, e := range restored {
		t.age.pushBack(e)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last flow", len(r.b)))
	}
	return r.err
}

// icmpPairs are the request/response ICMP types the Community ID spec pairs (IPv4, then IPv6).
var (
	icmpPairs  = map[uint16]uint16{8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
	icmp6Pairs = map[uint16]uint16{128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
		139: 140, 140: 139, 144: 145, 145: 144}
)

// icmpPorts maps an ICMP type and code to the spec's port pair: the type and its reply's type for a
// request/response pair (which then is one flow), else the type and code, one way.
func icmpPorts(proto uint8, typ, code uint16) (uint16, uint16, bool) {
	pairs := icmpPairs
	if proto == decode.ProtoICMPv6 {
		pairs = icmp6Pairs
	}
	if r, ok := pairs[typ]; ok {
		return typ, r, false
	}
	return typ, code, true
}
