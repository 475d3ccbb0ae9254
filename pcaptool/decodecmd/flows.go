package decodecmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/netflow/ipfix"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

type flowsOptions struct {
	output        string
	filter        string
	display       string
	idleTimeout   time.Duration
	activeTimeout time.Duration
	maxFlows      int
	stats         bool
	ipfix         []string
	checksums     bool
	features      flow.Features
}

// NewFlowsCommand returns `flows FILE`: the pipeline's flow aggregation run over a capture file,
// one conn.log-style record per flow.
func NewFlowsCommand() *cobra.Command {
	o := &flowsOptions{}
	c := &cobra.Command{
		Use:   "flows FILE",
		Short: "Aggregate a capture file into flows, printed with Zeek conn.log field names",
		Long: `Aggregate the packets of a capture file into bidirectional flows keyed by the innermost 5-tuple and VLAN,
as "capfleet process" does, and print one record per flow when it ends. Flows are Zeek's connections: Zeek's
rules pick the originator (a first packet from a service port, a SYN-ACK answered without its SYN), TCP follows
Zeek's states, history letters and timers (a connection ends 5 s after its close, reset or unanswered SYN, and a
later packet of the 5-tuple starts a new one), ICMP requests and replies pair by type, and flows idle out after
Zeek's per-protocol timeouts (TCP 5 min, UDP, ICMP and other protocols 1 min) unless --flow-idle-timeout sets
one for all. A tunnel carried in UDP (VXLAN, Geneve, GTP, Teredo, AYIYA) is a flow of its own, and the flow inside
records it. Columns (tsv, with a header line) or keys (json, one object per line):
` + strings.Join(flow.TSVFields, " ") + `
Unset values are "-" as in Zeek: duration and byte counts are unset for a flow whose packets all share
one timestamp.

--features cic adds CICFlowMeter's columns to each flow, named as in the CIC-IDS2017 CSVs (the json key
"cic"); -o csv then prints CICFlowMeter's CSV layout alone, header line included, for notebooks and models
trained on that data set. Forward is the direction of a flow's first packet, times are in microseconds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFlows(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "tsv", "output format: tsv, json (one object per line), or csv (CICFlowMeter's columns; needs --features cic)")
	c.Flags().Var(&o.features, "features", "feature sets to compute on every flow: cic (CICFlowMeter's columns, as CIC-IDS2017 names them)")
	c.Flags().StringVar(&o.filter, "filter", "", "aggregate only packets matching this tcpdump filter expression")
	c.Flags().StringVarP(&o.display, "display-filter", "Y", "", "aggregate only packets matching this Wireshark display filter (tshark -Y syntax)")
	c.Flags().DurationVar(&o.idleTimeout, "flow-idle-timeout", 0, "end a flow of any protocol after this long without packets (0: Zeek's per-protocol timeouts)")
	c.Flags().DurationVar(&o.activeTimeout, "flow-active-timeout", 30*time.Minute, "end (and restart) a flow open this long")
	c.Flags().IntVar(&o.maxFlows, "flow-table-max", 1_000_000, "flows kept at once; the least recently active is evicted beyond")
	c.Flags().BoolVar(&o.stats, "stats", false, "print decode and flow counters to stderr at the end")
	c.Flags().StringSliceVar(&o.ipfix, "ipfix", nil, "also export the flows as IPFIX over UDP to this collector (host:port; repeat or comma-separate for several)")
	c.Flags().BoolVar(&o.checksums, "verify-checksums", false, "check IPv4, TCP, UDP and ICMP checksums and count what fails as Zeek does (its default; zeek -C skips them): a bad segment makes its connection but is not counted, a bad IPv4 header drops the packet")
	return c
}

func runFlows(stdout, stderr io.Writer, path string, o *flowsOptions) error {
	features := o.features
	switch {
	case o.output != "tsv" && o.output != "json" && o.output != "csv":
		return fmt.Errorf("unknown output format %q: want tsv, json or csv", o.output)
	case o.output == "csv" && features&flow.FeaturesCIC == 0:
		return fmt.Errorf("-o csv prints CICFlowMeter's columns: add --features cic")
	}
	// Flows need headers only; a DNS name is read when the display filter asks for it.
	src, err := openPackets(path, o.filter, o.display, false)
	if err != nil {
		return err
	}
	defer src.Close()
	src.dec.VerifyChecksums = o.checksums
	w := bufio.NewWriterSize(stdout, 1<<16)
	var line []byte
	enc := json.NewEncoder(w)
	var werr error
	var exp *ipfix.Exporter
	if len(o.ipfix) > 0 {
		if exp, err = ipfix.Dial(o.ipfix, ipfix.Config{}); err != nil {
			return err
		}
	}
	emit := func(f *flow.Flow, why flow.EndReason) {
		rec := f.Record(why)
		if exp != nil {
			if err := exp.Add(&rec); err != nil && werr == nil {
				werr = err
			}
		}
		if o.output == "csv" {
			line = f.CIC.AppendCSV(line[:0])
			if _, err := w.Write(line); err != nil && werr == nil {
				werr = err
			}
			return
		}
		if o.output == "json" {
			if err := enc.Encode(&rec); err != nil && werr == nil {
				werr = err
			}
			return
		}
		line = rec.AppendTSV(line[:0])
		if _, err := w.Write(line); err != nil && werr == nil {
			werr = err
		}
	}
	switch o.output {
	case "tsv":
		fmt.Fprintf(w, "#fields\t%s\n", strings.Join(flow.TSVFields, "\t"))
	case "csv":
		fmt.Fprintf(w, "%s\n", flow.CICHeader)
	}
	table := flow.New(flow.Config{IdleTimeout: o.idleTimeout, ActiveTimeout: o.activeTimeout, MaxFlows: o.maxFlows, OnEnd: emit, Features: features})
	readErr := src.each(func(_ int, p *decode.Packet) { table.Add(p) })
	// What was read before a damaged record still makes flows worth printing.
	table.Flush()
	if exp != nil {
		if err := exp.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if o.stats {
		src.printStats(stderr)
		s := table.Stats
		if exp != nil {
			fmt.Fprintf(stderr, "ipfix_messages\t%d\nipfix_records\t%d\n", exp.Stats.Messages, exp.Stats.Records)
		}
		fmt.Fprintf(stderr, "flow_packets\t%d\nflow_not_ip\t%d\nflow_fragments_skipped\t%d\nflows\t%d\n", s.Packets, s.NotIP, s.Fragments, s.Created)
		for why := flow.EndReason(0); why < flow.NumEndReasons; why++ {
			fmt.Fprintf(stderr, "flows_ended_%s\t%d\n", why, s.Ended[why])
		}
	}
	if werr != nil {
		return werr
	}
	return readErr
}
