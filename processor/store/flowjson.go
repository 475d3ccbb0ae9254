package store

import (
	"encoding/json"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/flow"
)

// FlowJSON is a flow as the flows topic and `capfleet query flows -o json` print it: Zeek conn.log field
// names where Zeek has one, so the records join with Zeek data (and, by community_id, Suricata's).
type FlowJSON struct {
	TS  float64 `json:"ts"` // start, seconds since the epoch
	UID string  `json:"uid"`
	flow.ConnID
	Proto       string  `json:"proto"`
	Duration    float64 `json:"duration"`
	OrigBytes   uint64  `json:"orig_bytes"`
	RespBytes   uint64  `json:"resp_bytes"`
	ConnState   string  `json:"conn_state,omitempty"`
	History     string  `json:"history,omitempty"`
	OrigPkts    uint64  `json:"orig_pkts"`
	OrigIPBytes uint64  `json:"orig_ip_bytes"`
	RespPkts    uint64  `json:"resp_pkts"`
	RespIPBytes uint64  `json:"resp_ip_bytes"`
	VLAN        uint16  `json:"vlan,omitempty"`
	CommunityID string  `json:"community_id,omitempty"`
	Tunnel      string  `json:"tunnel,omitempty"` // the encapsulation, as flow.Tunnel.String
	// Not in Zeek:
	StartNS  int64  `json:"ts_ns"`
	EndNS    int64  `json:"end_ns"`
	TCPFlags uint8  `json:"tcp_flags,omitempty"`
	Sensor   string `json:"sensor,omitempty"`
	Closed   bool   `json:"closed"`
	// CIC are the CICFlowMeter features, keyed by CIC-IDS2017 column name; absent without them.
	CIC *flow.CIC `json:"cic,omitempty"`
}

// JSON converts f to its printed form.
func (f *Flow) JSON() FlowJSON {
	return FlowJSON{
		TS: float64(f.Start.UnixNano()) / 1e9, UID: f.UID,
		ConnID: flow.ConnID{OrigH: addrString(f.OrigAddr), OrigP: f.OrigPort, RespH: addrString(f.RespAddr), RespP: f.RespPort},
		Proto:  flow.ProtoName(f.Proto), Duration: f.End.Sub(f.Start).Seconds(),
		OrigBytes: f.OrigBytes, RespBytes: f.RespBytes, ConnState: f.State, History: f.History,
		OrigPkts: f.OrigPkts, OrigIPBytes: f.OrigIPBytes, RespPkts: f.RespPkts, RespIPBytes: f.RespIPBytes,
		VLAN: f.VLAN, CommunityID: f.CommunityID, Tunnel: f.Tunnel,
		StartNS: f.Start.UnixNano(), EndNS: f.End.UnixNano(), TCPFlags: f.TCPFlags, Sensor: f.Sensor, Closed: f.Closed,
		CIC: f.CIC,
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// MarshalJSON prints f as FlowJSON.
func (f Flow) MarshalJSON() ([]byte, error) { return json.Marshal(f.JSON()) }

// Duration is End - Start.
func (f *Flow) Duration() time.Duration { return f.End.Sub(f.Start) }
