package pipeline

import (
	"fmt"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// FlowConfig is the flow aggregation of the pipeline spec.
type FlowConfig struct {
	// IdleTimeout, when set, ends a flow of any protocol after this long without a packet; 0 takes
	// Zeek's inactivity timeouts (TCP 5 min, UDP, ICMP and other protocols 1 min).
	IdleTimeout   time.Duration
	ActiveTimeout time.Duration
	MaxFlows      int // per Kafka partition
	// Features are the optional feature sets computed on every flow (flow.FeaturesCIC), which its
	// records carry to the flows topic and Cassandra's flow_features table.
	Features flow.Features
}

// Validate rejects settings that would make every packet its own flow or keep flows forever.
func (c FlowConfig) Validate() error {
	switch {
	case c.IdleTimeout < 0:
		return fmt.Errorf("--flow-idle-timeout %s: must be positive (or 0 for Zeek's per-protocol timeouts)", c.IdleTimeout)
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
		t := &flowTable{emit: emit, counters: c}
		t.flows = flow.New(flow.Config{IdleTimeout: cfg.IdleTimeout, ActiveTimeout: cfg.ActiveTimeout, MaxFlows: cfg.MaxFlows, OnEnd: t.ended, Features: cfg.Features})
		if state != nil {
			if err := t.flows.RestoreState(state); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
}

// flowTable is processor/flow's table (what `capfleet pcap flows` runs) seen as a FlowTable: it
// turns flows into store records and counts evictions.
//
// A flow open for ActiveTimeout ends at its next packet (which starts a new flow) or by idling, as
// processor/flow does, not at Expire: the flows and their totals are the same, only a silent long
// flow's close is written up to IdleTimeout later.
type flowTable struct {
	flows    *flow.Table
	emit     func(store.Flow)
	counters *Counters
}

func (t *flowTable) Add(p *decode.Packet) { t.flows.Add(p) }
func (t *flowTable) Expire(now time.Time) { t.flows.Expire(now) }
func (t *flowTable) Len() int             { return t.flows.Len() }
func (t *flowTable) Latest() time.Time    { return t.flows.Latest() }

// Created counts the flows the table opened: the edge rollups count a flow in the window of the packet
// that opened it.
func (t *flowTable) Created() uint64 { return t.flows.Stats.Created }

func (t *flowTable) ended(f *flow.Flow, why flow.EndReason) {
	if why == flow.EndEvicted && t.counters != nil {
		t.counters.FlowsEvicted.Add(1)
	}
	r := record(f)
	r.Closed = true
	t.emit(r)
}

func (t *flowTable) Dirty() []store.Flow {
	var out []store.Flow
	t.flows.Dirty(func(f *flow.Flow) { out = append(out, record(f)) })
	return out
}

func (t *flowTable) MarshalState() ([]byte, error) {
	return t.flows.AppendState(make([]byte, 0, 16+t.flows.Len()*64)), nil
}

// record is the stored form of f, named as processor/flow names it so that `capfleet pcap flows`
// and `capfleet query flows` give one connection the same uid.
func record(f *flow.Flow) store.Flow {
	p := f.Proto
	return store.Flow{
		UID: f.UID(), CommunityID: f.CommunityID(), Start: f.First, End: f.LastPacket, Proto: p, VLAN: f.VLAN[0],
		OrigAddr: f.Key.Orig, OrigPort: f.OrigPort, RespAddr: f.Key.Resp, RespPort: f.RespPort,
		OrigPkts: f.Orig.Pkts, RespPkts: f.Resp.Pkts, OrigBytes: f.Orig.Bytes(p), RespBytes: f.Resp.Bytes(p),
		OrigIPBytes: f.Orig.IPBytes, RespIPBytes: f.Resp.IPBytes,
		TCPFlags: uint8(f.Orig.Flags | f.Resp.Flags), History: f.History(), State: f.ConnState(),
		Tunnel: f.Tunnel.String(), CIC: cicCopy(f.CIC),
	}
}

// cicCopy copies the features the table hands over, which it reuses after the call.
func cicCopy(c *flow.CIC) *flow.CIC {
	if c == nil {
		return nil
	}
	out := *c
	return &out
}
