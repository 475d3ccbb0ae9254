// Package query is `capfleet query`: the analyst's questions to what a pipeline stored in Cassandra.
//
//	capfleet query flows --ip 10.0.0.1 --since 1h
//	capfleet query flows --from 2009-11-18T08:00:00Z --to 2009-11-18T09:00:00Z -o json
//	capfleet query packets --sensor lab --from 1258531200 --to 1258534800 -w out.pcap
package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/processor/bpffilter"
	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/flowfilter"
	"capfleet.dev/capfleet/processor/store"
)

// DefaultKeyspace is the process command's default too.
const DefaultKeyspace = "capfleet"

type common struct {
	cass     cassconn.Config
	keyspace string
	since    time.Duration
	from, to string
}

func (c *common) addFlags(cmd *cobra.Command) {
	c.cass.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&c.keyspace, "keyspace", DefaultKeyspace, "Cassandra keyspace the pipeline writes")
	cmd.Flags().DurationVar(&c.since, "since", 0, "the last DURATION up to now (e.g. 1h); or use --from/--to")
	cmd.Flags().StringVar(&c.from, "from", "", "start of the range: RFC 3339 (UTC unless a zone is given) or seconds since the epoch")
	cmd.Flags().StringVar(&c.to, "to", "", "end of the range, included (default now)")
}

func (c *common) reader() (*store.Reader, func(), error) {
	cl, err := c.cass.Cluster()
	if err != nil {
		return nil, nil, err
	}
	s, err := store.Connect(cl, c.keyspace)
	if err != nil {
		return nil, nil, err
	}
	return store.NewReader(s), s.Close, nil
}

// NewCommand returns `capfleet query` with its flows and packets subcommands.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Ask what a pipeline stored in Cassandra: flows by IP and time, packets back as a pcap",
	}
	cmd.AddCommand(flowsCommand(), packetsCommand(), topCommand(), graphCommand(), trafficCommand())
	return cmd
}

func flowsCommand() *cobra.Command {
	var (
		c        common
		ip       string
		output   string
		port     int
		proto    string
		filter   string
		features flow.Features
	)
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Flows active in a time range, of one IP (one partition read per hour) or all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case output != "table" && output != "json" && output != "csv":
				return fmt.Errorf("-o %q: want table, json or csv", output)
			case output == "csv" && features&flow.FeaturesCIC == 0:
				return fmt.Errorf("-o csv prints CICFlowMeter's columns: add --features cic")
			case output == "table" && features != 0:
				return fmt.Errorf("--features: the table has no room for them; use -o csv or -o json")
			}
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d is not a port", port)
			}
			if proto != "" && proto != "tcp" && proto != "udp" && proto != "icmp" && proto != "sctp" {
				return fmt.Errorf("--proto %q: want tcp, udp, icmp or sctp", proto)
			}
			ff, err := flowfilter.Compile(filter)
			if err != nil {
				var e *displayfilter.Error
				if errors.As(err, &e) {
					return fmt.Errorf("-Y: %s", e.Caret())
				}
				return fmt.Errorf("-Y: %w", err)
			}
			from, to, err := timeRange(c.since, c.from, c.to, time.Now())
			if err != nil {
				return err
			}
			var addr netip.Addr
			if ip != "" {
				if addr, err = netip.ParseAddr(ip); err != nil {
					return fmt.Errorf("--ip %q: %w", ip, err)
				}
			}
			r, done, err := c.reader()
			if err != nil {
				return err
			}
			defer done()
			r.OnSkip = func(key string, err error) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %s: %v\n", key, err)
			}
			var flows []store.Flow
			if addr.IsValid() {
				flows, err = r.FlowsByIP(cmd.Context(), addr, from, to)
			} else {
				flows, err = r.FlowsBetween(cmd.Context(), from, to)
			}
			if err != nil {
				return err
			}
			flows = selectFlows(flows, port, proto)
			if ff != nil {
				kept := flows[:0]
				for i := range flows {
					if ff.Match(&flows[i]) {
						kept = append(kept, flows[i])
					}
				}
				flows = kept
			}
			if features&flow.FeaturesCIC != 0 {
				missing, err := attachFeatures(cmd.Context(), r, flows, to)
				if err != nil {
					return err
				}
				if missing > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %d of %d flows have no features stored (their pipeline ran without --flow-features cic when they ended)\n", missing, len(flows))
				}
			}
			switch output {
			case "json":
				return writeFlowsJSON(cmd.OutOrStdout(), flows)
			case "csv":
				return writeFlowsCSV(cmd.OutOrStdout(), flows)
			}
			return writeFlowsTable(cmd.OutOrStdout(), flows)
		},
	}
	c.addFlags(cmd)
	cmd.Flags().StringVar(&ip, "ip", "", "only flows with this address as either endpoint")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json (one Zeek conn.log-style object per line), or csv (CICFlowMeter's columns; needs --features cic)")
	cmd.Flags().Var(&features, "features", "feature sets to read with the flows, as the pipeline stored them (spec.flows.features): cic (CICFlowMeter's columns, as CIC-IDS2017 names them; the json key \"cic\"). -o csv prints them as `capfleet pcap flows --features cic -o csv` does")
	cmd.Flags().IntVar(&port, "port", 0, "only flows with this port on either side")
	cmd.Flags().StringVar(&proto, "proto", "", "only flows of this transport: tcp, udp, icmp or sctp")
	cmd.Flags().StringVarP(&filter, "display-filter", "Y", "", `only flows this filter accepts: Wireshark display-filter syntax over Zeek conn.log field names, each also as flow.NAME (`+
		`e.g. 'flow.duration > 10 && flow.orig_bytes > 1e6', 'conn_state == "S0" && flow.addr == 10.0.0.0/8'); fields: `+strings.Join(flowfilter.FieldNames(), ", "))
	return cmd
}

// selectFlows keeps the flows with port on either side (0: any) and of proto ("": any). The tables are
// keyed by time and address only, so these filters run here, on what one address or hour returned.
func selectFlows(flows []store.Flow, port int, proto string) []store.Flow {
	out := flows[:0]
	for _, f := range flows {
		if port != 0 && int(f.OrigPort) != port && int(f.RespPort) != port {
			continue
		}
		if port != 0 && (f.Proto == 1 || f.Proto == 58) {
			continue // ICMP "ports" are message types
		}
		if proto != "" && flow.ProtoName(f.Proto) != proto {
			continue
		}
		out = append(out, f)
	}
	return out
}

func writeFlowsJSON(w io.Writer, flows []store.Flow) error {
	enc := json.NewEncoder(w)
	for i := range flows {
		if err := enc.Encode(flows[i].JSON()); err != nil {
			return err
		}
	}
	return nil
}

func writeFlowsTable(w io.Writer, flows []store.Flow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tDURATION\tPROTO\tORIG\tRESP\tPKTS\tBYTES\tIP_BYTES\tSTATE\tHISTORY\tUID")
	for i := range flows {
		f := &flows[i]
		state := f.State
		if !f.Closed {
			state += "(open)"
		}
		fmt.Fprintf(tw, "%s\t%.6f\t%s\t%s\t%s\t%d/%d\t%d/%d\t%d/%d\t%s\t%s\t%s\n",
			f.Start.UTC().Format("2006-01-02T15:04:05.000000Z"), f.Duration().Seconds(), flow.ProtoName(f.Proto),
			endpoint(f.OrigAddr, f.OrigPort), endpoint(f.RespAddr, f.RespPort),
			f.OrigPkts, f.RespPkts, f.OrigBytes, f.RespBytes, f.OrigIPBytes, f.RespIPBytes, state, f.History, f.UID)
	}
	return tw.Flush()
}

func endpoint(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return "-"
	}
	return netip.AddrPortFrom(a, port).String()
}

func packetsCommand() *cobra.Command {
	var (
		c              common
		sensor, output string
		format         string
		filter         string
		display        string
		ip, flowID     string
		stats          bool
	)
	cmd := &cobra.Command{
		Use:   "packets",
		Short: "Stored packets of a sensor (in a time range, of an address or of one flow), written as a capture file in timestamp order",
		Long: `packets writes the stored packets of --sensor as a pcap or pcapng file, streaming: the export is never
held in memory. It reads only the blocks that can hold what is asked: those active in the time range, and
with --ip or --flow those whose address index may hold the addresses. --flow takes a flow's uid or its
Community ID (both in the flow rows, see query flows) and returns exactly that flow's packets; the flow is
looked up in the time range given (--since, --from/--to).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sensor == "" {
				return errors.New("--sensor is required")
			}
			if output == "" {
				return errors.New("-w FILE is required (- for standard output)")
			}
			if format != "auto" && format != "pcap" && format != "pcapng" {
				return fmt.Errorf("--format %q: want auto, pcap or pcapng", format)
			}
			if ip != "" && flowID != "" {
				return errors.New("--ip and --flow select differently: give one (a flow has both its addresses)")
			}
			from, to, err := timeRange(c.since, c.from, c.to, time.Now())
			if err != nil {
				return err
			}
			sel := selection{q: store.PacketQuery{Sensor: sensor, From: from, To: to}}
			if filter != "" {
				if sel.bpf, err = bpffilter.NewSet(filter); err != nil {
					return fmt.Errorf("--filter: %w", err)
				}
			}
			if strings.TrimSpace(display) != "" {
				if sel.display, err = displayfilter.Compile(display); err != nil {
					var e *displayfilter.Error
					if errors.As(err, &e) {
						return fmt.Errorf("-Y: %s", e.Caret())
					}
					return fmt.Errorf("-Y: %w", err)
				}
			}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("--ip %q: %w", ip, err)
				}
				sel.q.Hosts, sel.addr = []netip.Addr{a.Unmap()}, a.Unmap()
			}
			r, done, err := c.reader()
			if err != nil {
				return err
			}
			defer done()
			if flowID != "" {
				f, err := findFlow(cmd.Context(), r, flowID, from, to)
				if err != nil {
					return err
				}
				sel.flow = &f
				sel.q.From, sel.q.To, sel.q.Hosts = f.Start, f.End, []netip.Addr{f.OrigAddr, f.RespAddr}
			}
			skipped := 0
			sel.q.OnSkip = func(key string, err error) {
				skipped++
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %s: %v\n", key, err)
			}
			n, chosen, st, err := exportPackets(cmd.Context(), r, sel, format, output, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if output != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d packets to %s (%s)\n", n, output, chosen)
			}
			if stats || skipped > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "read %d of %d blocks in range (%d compressed bytes), %d unreadable, %d missing; %d rows of the per-packet layout; %d duplicate records dropped\n",
					st.BlocksRead, st.BlocksIndexed, st.BytesRead, st.BlocksCorrupt, st.BlocksMissing, st.LegacyRows, st.Duplicates)
			}
			return nil
		},
	}
	c.addFlags(cmd)
	cmd.Flags().StringVar(&sensor, "sensor", "", "sensor name the pipeline stored the packets under (its --sensor)")
	cmd.Flags().StringVarP(&output, "write", "w", "", "capture file to write, - for standard output")
	cmd.Flags().StringVar(&filter, "filter", "", "BPF filter in tcpdump syntax: export only the packets it accepts")
	cmd.Flags().StringVarP(&display, "display-filter", "Y", "", "Wireshark display filter (tshark -Y syntax): export only the packets it accepts; frame.number counts the packets the other options select")
	cmd.Flags().StringVar(&ip, "ip", "", "only packets with this address as source or destination of any of their IP headers (outer or inner)")
	cmd.Flags().StringVar(&flowID, "flow", "", "only the packets of this flow: its uid or Community ID")
	cmd.Flags().BoolVar(&stats, "stats", false, "say on standard error how many blocks were read")
	cmd.Flags().StringVar(&format, "format", "auto",
		"pcap (one link type, nanosecond timestamps), pcapng (an interface per node, interface and link type), or auto: pcap unless the packets have several link types")
	return cmd
}

// exportPackets writes the selected packets to path (or stdout for "-") and returns how many, in which
// format, and what the scan read.
func exportPackets(ctx context.Context, r *store.Reader, sel selection, format, path string, stdout io.Writer) (int, string, store.ScanStats, error) {
	var (
		single uint32
		st     store.ScanStats
	)
	if format == "auto" || format == "pcap" {
		lts, err := r.LinkTypes(ctx, sel.q.Sensor, sel.q.From, sel.q.To)
		if err != nil {
			return 0, "", st, err
		}
		switch {
		case len(lts) > 1 && format == "pcap":
			return 0, "", st, fmt.Errorf("the packets have %d link types (%s): pcap holds one, use --format pcapng", len(lts), linkTypeList(lts))
		case len(lts) > 1:
			format = "pcapng"
		default:
			format = "pcap"
			single = 1 // Ethernet: an empty file still needs one
			for lt := range lts {
				single = lt
			}
		}
	}
	out := stdout
	var f *os.File
	if path != "-" {
		var err error
		if f, err = os.Create(path); err != nil {
			return 0, "", st, err
		}
		defer f.Close()
		out = f
	}
	var (
		w packetWriter
		n int
	)
	if format == "pcap" {
		pw, err := newPcapWriter(out, single)
		if err != nil {
			return 0, "", st, err
		}
		w = pw
	}
	keep := sel.matcher()
	st, err := r.Scan(ctx, sel.q, func(p store.Packet) error {
		if !keep(&p) {
			return nil
		}
		if w == nil {
			nw, err := newPcapngWriter(out, p)
			if err != nil {
				return err
			}
			w = nw
		}
		n++
		return w.write(p)
	})
	if err == nil && w == nil {
		w, err = newPcapngWriter(out, store.Packet{LinkType: 1})
	}
	if err != nil {
		return n, "", st, err
	}
	if err := w.flush(); err != nil {
		return n, "", st, err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return n, "", st, err
		}
	}
	if format == "pcap" {
		return n, fmt.Sprintf("pcap, link type %d", single), st, nil
	}
	return n, "pcapng", st, nil
}

func linkTypeList(lts map[uint32]int) string {
	var s []string
	for lt, n := range lts {
		s = append(s, fmt.Sprintf("%d×%d", lt, n))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
