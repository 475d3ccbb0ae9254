package flow

import (
	"strconv"
	"strings"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// Record is a finished flow in Zeek conn.log terms, for sinks (JSON to Kafka, rows in Cassandra,
// lines on a terminal). Zeek leaves duration and byte counts unset for a flow whose first and last
// packet share a timestamp; HasDuration says whether they are set here too.
type Record struct {
	TS        time.Time `json:"-"`
	TSSeconds float64   `json:"ts"`
	UID       string    `json:"uid"`
	ConnID
	Proto       string  `json:"proto"`
	IPProto     uint8   `json:"ip_proto"`
	Duration    float64 `json:"duration,omitempty"`
	OrigBytes   uint64  `json:"orig_bytes"`
	RespBytes   uint64  `json:"resp_bytes"`
	ConnState   string  `json:"conn_state"`
	History     string  `json:"history"`
	OrigPkts    uint64  `json:"orig_pkts"`
	OrigIPBytes uint64  `json:"orig_ip_bytes"`
	RespPkts    uint64  `json:"resp_pkts"`
	RespIPBytes uint64  `json:"resp_ip_bytes"`
	OrigFlags   uint16  `json:"orig_tcp_flags,omitempty"`
	RespFlags   uint16  `json:"resp_tcp_flags,omitempty"`
	CommunityID string  `json:"community_id"`
	VLAN        uint16  `json:"vlan,omitempty"`
	InnerVLAN   uint16  `json:"inner_vlan,omitempty"`
	// Tunnel is the encapsulation the flow's packets came in (Zeek's tunnel_parents names the
	// tunnel's connection; this is its kind and endpoints), nil for a flow not tunnelled.
	Tunnel      *TunnelRecord `json:"tunnel,omitempty"`
	LastTS      time.Time     `json:"-"`
	EndReason   string        `json:"end_reason"`
	HasDuration bool          `json:"-"`
	// CIC are the flow's CICFlowMeter features, nil unless the table computed them.
	CIC *CIC `json:"cic,omitempty"`
}

// TunnelRecord is a Tunnel in a Record: the tunnel's kind (decode.Tunnel's name) and the outer
// header's endpoints, with ports for a tunnel carried in UDP.
type TunnelRecord struct {
	Type    string `json:"type"`
	Src     string `json:"src"`
	SrcPort uint16 `json:"src_port,omitempty"`
	Dst     string `json:"dst"`
	DstPort uint16 `json:"dst_port,omitempty"`
	// Changes counts the packets that came in another encapsulation than the one before.
	Changes uint8 `json:"changes,omitempty"`
}

func (tu *Tunnel) record() *TunnelRecord {
	if tu.Type == decode.TunnelNone {
		return nil
	}
	return &TunnelRecord{Type: tu.Type.String(), Src: tu.Src.String(), SrcPort: tu.SrcPort, Dst: tu.Dst.String(), DstPort: tu.DstPort, Changes: tu.Changes}
}

// String is the tunnel as the TSV column shows it, "" for none: its kind, then the outer source
// > destination ("vxlan 192.0.2.1:40000>192.0.2.2:4789").
func (tu *Tunnel) String() string {
	if r := tu.record(); r != nil {
		return r.String()
	}
	return ""
}

// String is the tunnel as the TSV column shows it: kind, then outer source > destination.
func (t *TunnelRecord) String() string {
	ep := func(a string, p uint16) string {
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		if p == 0 {
			return a
		}
		return a + ":" + strconv.Itoa(int(p))
	}
	return t.Type + " " + ep(t.Src, t.SrcPort) + ">" + ep(t.Dst, t.DstPort)
}

// ConnID is Zeek's conn_id: the endpoints of a connection, under conn.log's names. Both JSON forms
// of a flow, Record's and the flows topic's, embed it.
type ConnID struct {
	OrigH string `json:"id.orig_h"`
	OrigP uint16 `json:"id.orig_p"`
	RespH string `json:"id.resp_h"`
	RespP uint16 `json:"id.resp_p"`
}

// ProtoName is the transport name Zeek logs in the proto column: Zeek analyses TCP, UDP and ICMP,
// and logs any other IP protocol (SCTP too) as unknown_transport, without ports.
func ProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1, 58:
		return "icmp"
	}
	return "unknown_transport"
}

// Record summarises f.
func (f *Flow) Record(why EndReason) Record {
	k := f.Key
	r := Record{
		TS: f.First, TSSeconds: float64(f.First.UnixMicro()) / 1e6, LastTS: f.Last, UID: f.UID(),
		ConnID: ConnID{OrigH: k.Orig.String(), OrigP: k.OrigPort, RespH: k.Resp.String(), RespP: k.RespPort},
		Proto:  ProtoName(k.Proto), IPProto: k.Proto,
		OrigBytes: f.Orig.Bytes(k.Proto), RespBytes: f.Resp.Bytes(k.Proto),
		ConnState: f.ConnState(), History: f.History(),
		OrigPkts: f.Orig.Pkts, OrigIPBytes: f.Orig.IPBytes, RespPkts: f.Resp.Pkts, RespIPBytes: f.Resp.IPBytes,
		OrigFlags: f.Orig.Flags, RespFlags: f.Resp.Flags,
		CommunityID: f.CommunityID(), VLAN: k.VLAN[0], InnerVLAN: k.VLAN[1], EndReason: why.String(),
	}
	if d := f.Duration(); d > 0 {
		r.Duration, r.HasDuration = d.Seconds(), true
	}
	r.Tunnel = f.Tunnel.record()
	if f.CIC != nil {
		c := *f.CIC // the table reuses f.CIC; a record outlives the call
		r.CIC = &c
	}
	return r
}

// TSVFields are the columns of Record.AppendTSV, in Zeek conn.log names where Zeek has one.
var TSVFields = []string{
	"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration",
	"orig_bytes", "resp_bytes", "conn_state", "history", "orig_pkts", "orig_ip_bytes",
	"resp_pkts", "resp_ip_bytes", "ip_proto", "community_id", "vlan", "inner_vlan", "end_reason", "tunnel",
}

// AppendTSV appends r as a conn.log-style line: "-" for unset values, times in seconds with
// microseconds as Zeek prints them.
func (r *Record) AppendTSV(dst []byte) []byte {
	tab := func() { dst = append(dst, '\t') }
	u := func(v uint64) { dst = strconv.AppendUint(dst, v, 10) }
	dst = appendMicros(dst, r.TS.UnixMicro())
	tab()
	dst = append(dst, r.UID...)
	tab()
	dst = append(dst, r.OrigH...)
	tab()
	u(uint64(r.OrigP))
	tab()
	dst = append(dst, r.RespH...)
	tab()
	u(uint64(r.RespP))
	tab()
	dst = append(dst, r.Proto...)
	tab()
	if r.HasDuration {
		dst = appendMicros(dst, r.LastTS.Sub(r.TS).Microseconds())
		tab()
		u(r.OrigBytes)
		tab()
		u(r.RespBytes)
	} else {
		dst = append(dst, "-\t-\t-"...)
	}
	tab()
	dst = append(dst, r.ConnState...)
	tab()
	if r.History == "" {
		dst = append(dst, '-')
	} else {
		dst = append(dst, r.History...)
	}
	for _, v := range []uint64{r.OrigPkts, r.OrigIPBytes, r.RespPkts, r.RespIPBytes, uint64(r.IPProto)} {
		tab()
		u(v)
	}
	tab()
	dst = append(dst, r.CommunityID...)
	for _, v := range []uint16{r.VLAN, r.InnerVLAN} {
		tab()
		if v == 0 {
			dst = append(dst, '-')
		} else {
			u(uint64(v))
		}
	}
	tab()
	dst = append(dst, r.EndReason...)
	tab()
	if r.Tunnel == nil {
		dst = append(dst, '-')
	} else {
		dst = append(dst, r.Tunnel.String()...)
	}
	return append(dst, '\n')
}

// appendMicros appends microseconds as seconds with six decimals, exactly (a float64 of a
// 2020s epoch time in microseconds has one digit too few to be sure of the last).
func appendMicros(dst []byte, us int64) []byte {
	if us < 0 {
		dst = append(dst, '-')
		us = -us
	}
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	var b [7]byte
	b[0] = '.'
	for i := 6; i >= 1; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(dst, b[:]...)
}
