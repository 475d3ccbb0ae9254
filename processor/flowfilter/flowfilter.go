// Package flowfilter compiles display filters over flows (Zeek conn.log's field names), the filters of
// `query flows -Y` and of a pipeline's flow sinks (`process --flow-filter`, a PacketPipeline's
// spec.flows.filter): one schema, so a filter means the same at rest and in flight.
package flowfilter

import (
	"net/netip"
	"strings"
	"time"

	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// flowSchema names a stored flow's fields for filters, as Zeek's conn.log names them (ts, id.orig_h,
// orig_bytes, conn_state, ...), each also under "flow." (flow.duration), plus flow.addr and flow.port
// for either end and flow.bytes and flow.pkts for both directions.
var schema = func() *displayfilter.Schema[store.Flow] {
	s := displayfilter.NewSchema[store.Flow]()
	s.Floats = true
	u := func(get func(f *store.Flow) uint64) func(*store.Flow) (uint64, bool) {
		return func(f *store.Flow) (uint64, bool) { return get(f), true }
	}
	s.Seconds("ts", func(f *store.Flow) (time.Duration, bool) {
		return time.Duration(f.Start.UnixNano()), !f.Start.IsZero()
	})
	// Zeek leaves duration unset for a flow whose packets share one timestamp.
	s.Seconds("duration", func(f *store.Flow) (time.Duration, bool) { d := f.End.Sub(f.Start); return d, d > 0 })
	s.Text("uid", func(f *store.Flow) string { return f.UID })
	s.Text("community_id", func(f *store.Flow) string { return f.CommunityID })
	s.Text("sensor", func(f *store.Flow) string { return f.Sensor })
	s.Addr("id.orig_h", func(f *store.Flow) netip.Addr { return f.OrigAddr })
	s.Addr("id.resp_h", func(f *store.Flow) netip.Addr { return f.RespAddr })
	s.Addr("addr", func(f *store.Flow) netip.Addr { return f.OrigAddr }, func(f *store.Flow) netip.Addr { return f.RespAddr })
	s.Uint("id.orig_p", u(func(f *store.Flow) uint64 { return uint64(f.OrigPort) }))
	s.Uint("id.resp_p", u(func(f *store.Flow) uint64 { return uint64(f.RespPort) }))
	s.Uint("port", u(func(f *store.Flow) uint64 { return uint64(f.OrigPort) }), u(func(f *store.Flow) uint64 { return uint64(f.RespPort) }))
	s.Text("proto", func(f *store.Flow) string { return flow.ProtoName(f.Proto) })
	s.Uint("ip_proto", u(func(f *store.Flow) uint64 { return uint64(f.Proto) }))
	s.Uint("orig_bytes", u(func(f *store.Flow) uint64 { return f.OrigBytes }))
	s.Uint("resp_bytes", u(func(f *store.Flow) uint64 { return f.RespBytes }))
	s.Uint("bytes", u(func(f *store.Flow) uint64 { return f.OrigBytes + f.RespBytes }))
	s.Uint("orig_pkts", u(func(f *store.Flow) uint64 { return f.OrigPkts }))
	s.Uint("resp_pkts", u(func(f *store.Flow) uint64 { return f.RespPkts }))
	s.Uint("pkts", u(func(f *store.Flow) uint64 { return f.OrigPkts + f.RespPkts }))
	s.Uint("orig_ip_bytes", u(func(f *store.Flow) uint64 { return f.OrigIPBytes }))
	s.Uint("resp_ip_bytes", u(func(f *store.Flow) uint64 { return f.RespIPBytes }))
	s.Text("conn_state", func(f *store.Flow) string { return f.State })
	s.Text("history", func(f *store.Flow) string { return f.History })
	s.Uint("vlan", func(f *store.Flow) (uint64, bool) { return uint64(f.VLAN), f.VLAN != 0 })
	for _, n := range s.Names() {
		s.Alias("flow."+n, n)
	}
	return s
}()

// Filter keeps the flows its condition holds for; a nil Filter keeps every flow.
type Filter = displayfilter.RecordFilter[store.Flow]

// Compile compiles a flow filter; blank text is no filter (nil keeps all). A filter that does not parse
// or names an unknown field gives a *displayfilter.Error with its column.
func Compile(text string) (*Filter, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	return schema.Compile(text)
}

// FieldNames are the fields a flow filter names, without their "flow." aliases.
func FieldNames() []string {
	var out []string
	for _, n := range schema.Names() {
		if !strings.HasPrefix(n, "flow.") {
			out = append(out, n)
		}
	}
	return out
}
