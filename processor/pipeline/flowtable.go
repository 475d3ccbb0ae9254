package pipeline

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
		t := &flowTable{cfg: cfg, emit: emit, flows: map[flowKey]*flowEntry{}, counters: c}
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
	Flow        store.Flow
	OrigIsLo    bool
	InnerVLAN   uint16 // part of the key; the stored record keeps the outer tag
	SeenSyn     bool
	SeenSynAck  bool
	FinOrig     bool
	FinResp     bool
	RstOrig     bool
	RstResp     bool
	HistorySeen uint32 // bit per history letter, so each shows once, in order of first appearance
	Dirty       bool
}

// flowTable aggregates the flows of one partition by packet time.
//
// It keys, times out and counts flows as processor/flow does (what `capfleet pcap flows` runs; a parity
// test holds them to the same flows, packets, IP bytes, Community IDs and uids on real captures), but it
// keeps its whole state in exported fields so that a checkpoint can serialize it and a restarted
// consumer resume it: processor/flow's Table neither lists its open flows nor exports their state.
// History and conn_state here are a simpler approximation of Zeek's than processor/flow's.
type flowTable struct {
	cfg       FlowConfig
	emit      func(store.Flow)
	flows     map[flowKey]*flowEntry
	lastSweep time.Time
	counters  *Counters
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
		orig, resp, origIsLo := src, dst, srcIsLo
		// A first packet that is a SYN-ACK comes from the responder: the roles swap, as in Zeek.
		if h.L4.Proto == decode.ProtoTCP && h.L4.Flags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn|decode.TCPAck {
			orig, resp, origIsLo = dst, src, !srcIsLo
		}
		e = &flowEntry{OrigIsLo: origIsLo, InnerVLAN: p.VLAN[1], Flow: store.Flow{
			Start: ts, End: ts, Proto: proto, VLAN: p.VLAN[0],
			OrigAddr: orig.Addr(), OrigPort: orig.Port(), RespAddr: resp.Addr(), RespPort: resp.Port(),
		}}
		// Named exactly as processor/flow names it, so `capfleet pcap flows` and `capfleet query flows`
		// give one connection the same uid.
		key := flow.Key{Orig: orig.Addr(), Resp: resp.Addr(), OrigPort: orig.Port(), RespPort: resp.Port(), Proto: proto, VLAN: p.VLAN}
		named := flow.Flow{Key: key, First: ts}
		e.Flow.UID, e.Flow.CommunityID = named.UID(), named.CommunityID()
		t.flows[k] = e
	}
	if ts.After(e.Flow.End) {
		e.Flow.End = ts
	}
	fromOrig := srcIsLo == e.OrigIsLo
	f := &e.Flow
	if fromOrig {
		f.OrigPkts++
		f.OrigBytes += uint64(max(h.L4.PayloadLen, 0))
		f.OrigIPBytes += uint64(h.TotalLen)
	} else {
		f.RespPkts++
		f.RespBytes += uint64(max(h.L4.PayloadLen, 0))
		f.RespIPBytes += uint64(h.TotalLen)
	}
	if h.L4.Proto == decode.ProtoTCP {
		e.tcp(h.L4.Flags, h.L4.PayloadLen, fromOrig)
	}
	e.Dirty = true
}

// history letters, Zeek's: upper case for the originator, lower for the responder.
const historyLetters = "SHADFR"

func (e *flowEntry) tcp(flags uint16, payload int, fromOrig bool) {
	e.Flow.TCPFlags |= uint8(flags)
	syn, ack, fin, rst := flags&decode.TCPSyn != 0, flags&decode.TCPAck != 0, flags&decode.TCPFin != 0, flags&decode.TCPRst != 0
	mark := func(letter byte) {
		i := strings.IndexByte(historyLetters, letter)
		bit := uint32(1) << i
		c := letter
		if !fromOrig {
			bit <<= 8
			c += 'a' - 'A'
		}
		if e.HistorySeen&bit == 0 {
			e.HistorySeen |= bit
			e.Flow.History += string(c)
		}
	}
	switch {
	case syn && !ack:
		mark('S')
		if fromOrig {
			e.SeenSyn = true
		}
	case syn && ack:
		mark('H')
		if !fromOrig {
			e.SeenSynAck = true
		}
	case ack && payload == 0 && !fin && !rst:
		mark('A')
	}
	if payload > 0 {
		mark('D')
	}
	if fin {
		mark('F')
		if fromOrig {
			e.FinOrig = true
		} else {
			e.FinResp = true
		}
	}
	if rst {
		mark('R')
		if fromOrig {
			e.RstOrig = true
		} else {
			e.RstResp = true
		}
	}
}

// state is a Zeek-like conn_state.
func (e *flowEntry) state() string {
	f := &e.Flow
	if f.Proto != decode.ProtoTCP {
		if f.RespPkts > 0 {
			return "SF"
		}
		return "S0"
	}
	switch {
	case e.SeenSyn && !e.SeenSynAck && e.RstResp:
		return "REJ"
	case e.SeenSyn && f.RespPkts == 0:
		return "S0"
	case !e.SeenSyn:
		return "OTH"
	case e.RstOrig:
		return "RSTO"
	case e.RstResp:
		return "RSTR"
	case e.FinOrig && e.FinResp:
		return "SF"
	case e.FinOrig:
		return "S2"
	case e.FinResp:
		return "S3"
	}
	return "S1"
}

func (t *flowTable) close(k flowKey, e *flowEntry) {
	delete(t.flows, k)
	f := e.Flow
	f.State, f.Closed = e.state(), true
	t.emit(f)
}

// Expire closes the flows whose timeouts passed at now. Sweeping costs a pass over the table, so it runs
// at most once per second of packet time; a packet of a timed-out flow closes it on arrival anyway, so
// the records do not depend on when sweeps happen.
func (t *flowTable) Expire(now time.Time) {
	if now.Sub(t.lastSweep) < time.Second {
		return
	}
	t.lastSweep = now
	var done []flowKey
	for k, e := range t.flows {
		if now.Sub(e.Flow.End) >= t.cfg.IdleTimeout || now.Sub(e.Flow.Start) >= t.cfg.ActiveTimeout {
			done = append(done, k)
		}
	}
	t.closeSorted(done)
}

// closeSorted closes flows in start order, so that the emitted order does not follow map iteration.
func (t *flowTable) closeSorted(keys []flowKey) {
	slices.SortFunc(keys, func(a, b flowKey) int {
		ea, eb := t.flows[a], t.flows[b]
		return cmp.Or(ea.Flow.Start.Compare(eb.Flow.Start), strings.Compare(ea.Flow.UID, eb.Flow.UID))
	})
	for _, k := range keys {
		t.close(k, t.flows[k])
	}
}

// evictOldest closes the least recently seen flow early, to keep the table bound.
func (t *flowTable) evictOldest() {
	var (
		oldest flowKey
		found  *flowEntry
	)
	for k, e := range t.flows {
		if found == nil || e.Flow.End.Before(found.Flow.End) || (e.Flow.End.Equal(found.Flow.End) && e.Flow.UID < found.Flow.UID) {
			oldest, found = k, e
		}
	}
	if found != nil {
		t.close(oldest, found)
		if t.counters != nil {
			t.counters.FlowsEvicted.Add(1)
		}
	}
}

// Flush closes every open flow (for an offline run).
func (t *flowTable) Flush() {
	keys := make([]flowKey, 0, len(t.flows))
	for k := range t.flows {
		keys = append(keys, k)
	}
	t.closeSorted(keys)
}

func (t *flowTable) Dirty() []store.Flow {
	var out []store.Flow
	for _, e := range t.flows {
		if e.Dirty {
			f := e.Flow
			f.State = e.state()
			out = append(out, f)
			e.Dirty = false
		}
	}
	return out
}

type flowState struct {
	Version   int
	LastSweep time.Time
	Flows     []*flowEntry
}

const flowStateVersion = 1

func (t *flowTable) MarshalState() ([]byte, error) {
	s := flowState{Version: flowStateVersion, LastSweep: t.lastSweep, Flows: make([]*flowEntry, 0, len(t.flows))}
	for _, e := range t.flows {
		s.Flows = append(s.Flows, e)
	}
	// gob, not JSON: store.Flow marshals to JSON as the Zeek-style record, which drops state.
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (t *flowTable) unmarshal(b []byte) error {
	var s flowState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return fmt.Errorf("flow checkpoint: %w", err)
	}
	if s.Version != flowStateVersion {
		return fmt.Errorf("flow checkpoint version %d, this build reads %d", s.Version, flowStateVersion)
	}
	t.lastSweep = s.LastSweep
	for _, e := range s.Flows {
		if e == nil {
			return errors.New("flow checkpoint: null flow")
		}
		f := &e.Flow
		o, r := netip.AddrPortFrom(f.OrigAddr, f.OrigPort), netip.AddrPortFrom(f.RespAddr, f.RespPort)
		k := flowKey{vlan: [2]uint16{f.VLAN, e.InnerVLAN}, proto: f.Proto, lo: o, hi: r}
		if !e.OrigIsLo {
			k.lo, k.hi = r, o
		}
		t.flows[k] = e
	}
	return nil
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
