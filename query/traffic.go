package query

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// Counts are packets and their bytes.
type Counts struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// TrafficPoint is what a sensor saw in one step [Start, Start+Step): every packet record and its length
// on the wire (tshark's io,stat frames and bytes), the decoded ones by IP protocol ("non-ip" for none)
// and, for IP, by direction between local (private, loopback, link-local) and remote addresses, and the
// packets the pipeline's filters (BPF or display filter) dropped or it could not decode.
type TrafficPoint struct {
	Start        time.Time         `json:"start"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Proto        map[string]Counts `json:"proto"`
	In           Counts            `json:"in"`
	Out          Counts            `json:"out"`
	Internal     Counts            `json:"internal"`
	Filtered     uint64            `json:"filtered"`
	DecodeErrors uint64            `json:"decode_errors"`
}

// Traffic sums the stored traffic counters of sensor into steps of step (a multiple of the width the
// pipeline counted at) for the windows starting in [from, to]. Steps without packets are left out.
func Traffic(ctx context.Context, r *store.Reader, sensor string, from, to time.Time, step time.Duration) ([]TrafficPoint, error) {
	if sensor == "" {
		return nil, fmt.Errorf("--sensor is required: traffic is counted per sensor")
	}
	if step <= 0 {
		return nil, fmt.Errorf("--step %s: must be positive", step)
	}
	// A window of a step that starts before from still belongs to the step holding from.
	rows, err := r.Traffic(ctx, sensor, floorTime(from, step), to)
	if err != nil {
		return nil, err
	}
	return SumTraffic(rows, step)
}

// SumTraffic adds rows up into steps of step.
func SumTraffic(rows []store.TrafficRow, step time.Duration) ([]TrafficPoint, error) {
	sums := map[int64]*store.TrafficCounts{}
	for i := range rows {
		r := &rows[i]
		if r.Step <= 0 || step%r.Step != 0 {
			return nil, fmt.Errorf("--step %s: the pipeline counted in windows of %s; ask for a multiple of it", step, r.Step)
		}
		k := floorTime(r.Start, step).UnixNano()
		s := sums[k]
		if s == nil {
			s = &store.TrafficCounts{}
			sums[k] = s
		}
		s.Merge(&r.TrafficCounts)
	}
	out := make([]TrafficPoint, 0, len(sums))
	for k, s := range sums {
		p := TrafficPoint{Start: time.Unix(0, k).UTC(), Packets: s.Packets, Bytes: s.Bytes, Proto: map[string]Counts{},
			In: Counts(s.In), Out: Counts(s.Out), Internal: Counts(s.Internal), Filtered: s.Filtered, DecodeErrors: s.DecodeErrors}
		for proto, c := range s.Proto {
			n := p.Proto[protoName(proto)]
			n.Packets += c.Packets
			n.Bytes += c.Bytes
			p.Proto[protoName(proto)] = n
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// protoName names the common IP protocols as flows do, the others by number.
func protoName(p int) string {
	switch p {
	case store.NonIP:
		return "non-ip"
	case 58:
		return "icmp6"
	case 1, 6, 17, 132:
		return flow.ProtoName(uint8(p))
	}
	return strconv.Itoa(p)
}

// floorTime is the start of the step holding t, steps counted from the epoch.
func floorTime(t time.Time, step time.Duration) time.Time {
	ns, w := t.UnixNano(), int64(step)
	r := ns % w
	if r < 0 {
		r += w
	}
	return time.Unix(0, ns-r).UTC()
}

func trafficCommand() *cobra.Command {
	var (
		c      common
		sensor string
		step   time.Duration
		o      string
	)
	cmd := &cobra.Command{
		Use:   "traffic",
		Short: "Packets and bytes a sensor saw per step (1s, 1m...), by IP protocol and direction, from the pipeline's counters",
		Long: `Sums the traffic counters the pipeline stored for the sensor (per window of --traffic-step, 1s by
default, per Kafka partition) into steps of --step, for the time range. Bytes are frame lengths on the
wire, as tshark's io,stat counts them. tcp, udp, icmp...: the decoded packets by the protocol of their
outer IP header; in, out, internal: IP packets from a remote to a local address, local to remote, and
local to local (local: private, loopback, link-local). Steps without packets are left out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o != "table" && o != "json" && o != "csv" {
				return fmt.Errorf("-o %q: want table, csv or json", o)
			}
			if sensor == "" {
				return fmt.Errorf("--sensor is required: traffic is counted per sensor")
			}
			if step <= 0 {
				return fmt.Errorf("--step %s: must be positive", step)
			}
			from, to, err := timeRange(c.since, c.from, c.to, time.Now())
			if err != nil {
				return err
			}
			r, done, err := c.reader()
			if err != nil {
				return err
			}
			defer done()
			points, err := Traffic(cmd.Context(), r, sensor, from, to, step)
			if err != nil {
				return err
			}
			return writeTraffic(cmd.OutOrStdout(), points, o)
		},
	}
	c.addFlags(cmd)
	cmd.Flags().StringVar(&sensor, "sensor", "", "the sensor (the name the pipeline stores under)")
	cmd.Flags().DurationVar(&step, "step", time.Second, "width of a step: a multiple of the pipeline's --traffic-step")
	cmd.Flags().StringVarP(&o, "output", "o", "table", "table, csv or json (one object per line)")
	return cmd
}

// trafficProtos are the protocols given a column of their own in a table or CSV; the rest add up in
// "other" (IP) and "non-ip".
var trafficProtos = []string{"tcp", "udp", "icmp"}

func protoColumns(p TrafficPoint) []Counts {
	var other Counts
	out := make([]Counts, len(trafficProtos), len(trafficProtos)+2)
	for name, c := range p.Proto {
		i := indexOf(trafficProtos, name)
		switch {
		case name == "icmp6":
			i = indexOf(trafficProtos, "icmp")
		case name == "non-ip":
			continue
		}
		if i < 0 {
			other.Packets += c.Packets
			other.Bytes += c.Bytes
			continue
		}
		out[i].Packets += c.Packets
		out[i].Bytes += c.Bytes
	}
	return append(out, other, p.Proto["non-ip"])
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func writeTraffic(w io.Writer, points []TrafficPoint, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, p := range points {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"start", "packets", "bytes", "tcp_packets", "tcp_bytes", "udp_packets", "udp_bytes", "icmp_packets", "icmp_bytes",
			"other_ip_packets", "other_ip_bytes", "non_ip_packets", "non_ip_bytes", "in_packets", "in_bytes", "out_packets", "out_bytes",
			"internal_packets", "internal_bytes", "filtered", "decode_errors"})
		for _, p := range points {
			row := []string{p.Start.Format(time.RFC3339Nano), u(p.Packets), u(p.Bytes)}
			for _, c := range protoColumns(p) {
				row = append(row, u(c.Packets), u(c.Bytes))
			}
			row = append(row, u(p.In.Packets), u(p.In.Bytes), u(p.Out.Packets), u(p.Out.Bytes), u(p.Internal.Packets), u(p.Internal.Bytes),
				u(p.Filtered), u(p.DecodeErrors))
			_ = cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "START\tPACKETS\tBYTES\tTCP\tUDP\tICMP\tOTHER\tNON-IP\tIN\tOUT\tINTERNAL\tFILTERED\tDECODE_ERR\t")
	for _, p := range points {
		pc := protoColumns(p)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Start.Format(time.RFC3339Nano), p.Packets, p.Bytes,
			pc[0].Packets, pc[1].Packets, pc[2].Packets, pc[3].Packets, pc[4].Packets, p.In.Packets, p.Out.Packets, p.Internal.Packets,
			p.Filtered, p.DecodeErrors)
	}
	return tw.Flush()
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }
