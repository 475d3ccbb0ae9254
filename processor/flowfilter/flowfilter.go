package query

import (
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// flowSchema names a stored flow's fields for filters, as Zeek's conn.log names them (ts, id.orig_h,
// orig_bytes, conn_state, ...), each also under "flow." (flow.duration), plus flow.addr and flow.port
// for either end and flow.bytes and flow.pkts for both directions.
var flowSchema = func() *displayfilter.Schema[store.Flow] {
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

// compileFlowFilter compiles a -Y flow filter; an empty one is no filter (nil passes all).
func compileFlowFilter(text string) (*displayfilter.RecordFilter[store.Flow], error) {
	if text == "" {
		return nil, nil
	}
	return flowSchema.Compile(text)
}
