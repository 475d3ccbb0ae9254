package query

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// Talker is one group's share of the traffic: a host, a pair of hosts, a service port or an IP
// protocol. Out and In are seen from the group's first member: what a host sent and received, what A
// sent to B and B to A, what the originators sent to a port and got back. Bytes are IP bytes (the IP
// headers and what they carry, Zeek's ip_bytes), so they do not depend on the link the sensor sits on.
type Talker struct {
	Group                string `json:"group"`
	A                    string `json:"a"`
	B                    string `json:"b,omitempty"`
	Flows                uint64 `json:"flows"`
	Packets, Bytes       uint64 `json:"-"`
	PacketsOut, BytesOut uint64 `json:"-"`
	PacketsIn, BytesIn   uint64 `json:"-"`
}

// MarshalJSON writes the totals with the directional counts.
func (t Talker) MarshalJSON() ([]byte, error) {
	type plain Talker
	return json.Marshal(struct {
		plain
		Packets    uint64 `json:"packets"`
		Bytes      uint64 `json:"ip_bytes"`
		PacketsOut uint64 `json:"packets_out"`
		BytesOut   uint64 `json:"ip_bytes_out"`
		PacketsIn  uint64 `json:"packets_in"`
		BytesIn    uint64 `json:"ip_bytes_in"`
	}{plain(t), t.Packets, t.Bytes, t.PacketsOut, t.BytesOut, t.PacketsIn, t.BytesIn})
}

// Groupings of Top.
const (
	ByHost  = "host"
	ByPair  = "pair"
	ByPort  = "port"
	ByProto = "proto"
)

// Top sums flows by group and returns the n largest by "bytes", "packets" or "flows" (n <= 0: all),
// ties broken by the group's name so the order is stable. A flow counts whole in the range it was
// active in; a host counts each flow it is an endpoint of once.
func Top(flows []store.Flow, group, by string, n int) ([]Talker, error) {
	sums := map[string]*Talker{}
	add := func(t Talker) {
		s := sums[t.A+" "+t.B]
		if s == nil {
			s = &Talker{Group: group, A: t.A, B: t.B}
			sums[t.A+" "+t.B] = s
		}
		s.Flows++
		s.PacketsOut += t.PacketsOut
		s.BytesOut += t.BytesOut
		s.PacketsIn += t.PacketsIn
		s.BytesIn += t.BytesIn
	}
	for i := range flows {
		f := &flows[i]
		orig, resp := f.OrigAddr.String(), f.RespAddr.String()
		fwd := Talker{A: orig, B: resp, PacketsOut: f.OrigPkts, BytesOut: f.OrigIPBytes, PacketsIn: f.RespPkts, BytesIn: f.RespIPBytes}
		back := Talker{A: resp, B: orig, PacketsOut: f.RespPkts, BytesOut: f.RespIPBytes, PacketsIn: f.OrigPkts, BytesIn: f.OrigIPBytes}
		switch group {
		case ByHost:
			fwd.B, back.B = "", ""
			add(fwd)
			if resp != orig {
				add(back)
			}
		case ByPair:
			if pairOrder(f.RespAddr, f.OrigAddr) {
				fwd = back
			}
			add(fwd)
		case ByPort:
			fwd.A, fwd.B = servicePort(f), ""
			add(fwd)
		case ByProto:
			fwd.A, fwd.B = flow.ProtoName(f.Proto), ""
			add(fwd)
		default:
			return nil, fmt.Errorf("--group %q: want host, pair, port or proto", group)
		}
	}
	key, err := topKey(by)
	if err != nil {
		return nil, err
	}
	out := make([]Talker, 0, len(sums))
	for _, s := range sums {
		s.Packets, s.Bytes = s.PacketsOut+s.PacketsIn, s.BytesOut+s.BytesIn
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if ki, kj := key(&out[i]), key(&out[j]); ki != kj {
			return ki > kj
		}
		return out[i].A+" "+out[i].B < out[j].A+" "+out[j].B
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func topKey(by string) (func(*Talker) uint64, error) {
	switch by {
	case "bytes":
		return func(t *Talker) uint64 { return t.Bytes }, nil
	case "packets":
		return func(t *Talker) uint64 { return t.Packets }, nil
	case "flows":
		return func(t *Talker) uint64 { return t.Flows }, nil
	}
	return nil, fmt.Errorf("--by %q: want bytes, packets or flows", by)
}

// pairOrder says whether a comes first in a pair: the smaller address, so a pair is one row whichever
// side opened each of its flows.
func pairOrder(a, b netip.Addr) bool { return a.Less(b) }

// servicePort names a flow's responder port with its transport ("tcp/443"); ICMP's "ports" are message
// types and other protocols have none, so they group by protocol alone.
func servicePort(f *store.Flow) string {
	name := flow.ProtoName(f.Proto)
	switch f.Proto {
	case 6, 17, 132:
		return name + "/" + strconv.Itoa(int(f.RespPort))
	}
	return name
}

func topCommand() *cobra.Command {
	var (
		c            common
		by, group, o string
		n            int
		sensor       string
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Top talkers: hosts, host pairs, service ports or protocols by bytes, packets or flows, from the stored flows",
		Long: `Sums the stored flows active in the time range by host, by pair of hosts, by service port (the
responder's port and transport) or by IP protocol, and prints the largest. A flow counts whole in a range
it was active in. Bytes are IP bytes (Zeek's orig_ip_bytes + resp_ip_bytes); _out and _in are seen from
the group's first member (a host's sent and received, A to B and B to A for a pair).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o != "table" && o != "json" && o != "csv" {
				return fmt.Errorf("-o %q: want table, json or csv", o)
			}
			if _, err := topKey(by); err != nil {
				return err
			}
			if group != ByHost && group != ByPair && group != ByPort && group != ByProto {
				return fmt.Errorf("--group %q: want host, pair, port or proto", group)
			}
			flows, err := c.storedFlows(cmd, sensor)
			if err != nil {
				return err
			}
			top, err := Top(flows, group, by, n)
			if err != nil {
				return err
			}
			return writeTop(cmd.OutOrStdout(), top, o)
		},
	}
	c.addFlags(cmd)
	cmd.Flags().StringVar(&by, "by", "bytes", "rank by bytes, packets or flows")
	cmd.Flags().StringVar(&group, "group", ByHost, "group by host, pair, port or proto")
	cmd.Flags().IntVarP(&n, "top", "n", 20, "how many to print (0: all)")
	cmd.Flags().StringVarP(&o, "output", "o", "table", "table, json (one object per line) or csv")
	cmd.Flags().StringVar(&sensor, "sensor", "", "only the flows stored under this sensor name")
	return cmd
}

func writeTop(w io.Writer, top []Talker, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, t := range top {
			if err := enc.Encode(t); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"group", "a", "b", "flows", "packets", "ip_bytes", "packets_out", "ip_bytes_out", "packets_in", "ip_bytes_in"})
		for _, t := range top {
			_ = cw.Write(append([]string{t.Group, t.A, t.B}, uints(t.Flows, t.Packets, t.Bytes, t.PacketsOut, t.BytesOut, t.PacketsIn, t.BytesIn)...))
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "A\tB\tFLOWS\tPACKETS\tIP_BYTES\tPKTS_OUT\tBYTES_OUT\tPKTS_IN\tBYTES_IN\t")
	for _, t := range top {
		b := t.B
		if b == "" {
			b = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.A, b, t.Flows, t.Packets, t.Bytes, t.PacketsOut, t.BytesOut, t.PacketsIn, t.BytesIn)
	}
	return tw.Flush()
}

func uints(vs ...uint64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.FormatUint(v, 10)
	}
	return out
}

// storedFlows are the flows active in the command's time range, of one sensor when sensor is set.
func (c *common) storedFlows(cmd *cobra.Command, sensor string) ([]store.Flow, error) {
	from, to, err := timeRange(c.since, c.from, c.to, time.Now())
	if err != nil {
		return nil, err
	}
	r, done, err := c.reader()
	if err != nil {
		return nil, err
	}
	defer done()
	r.OnSkip = func(key string, err error) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %s: %v\n", key, err)
	}
	return StoredFlows(cmd.Context(), r, from, to, sensor)
}

// StoredFlows are the flows active in [from, to], of one sensor when sensor is not empty: what query
// top and query graph (from the flows) read.
func StoredFlows(ctx context.Context, r *store.Reader, from, to time.Time, sensor string) ([]store.Flow, error) {
	flows, err := r.FlowsBetween(ctx, from, to)
	if err != nil || sensor == "" {
		return flows, err
	}
	kept := flows[:0]
	for _, f := range flows {
		if f.Sensor == sensor {
			kept = append(kept, f)
		}
	}
	return kept, nil
}
