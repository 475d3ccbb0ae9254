// Package nfcmd holds the NetFlow/IPFIX commands: `capfleet pcap netflow` (export packets found in a
// capture file) and `capfleet collect` (a UDP collector that stores flows in Cassandra).
package nfcmd

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
)

type pcapOptions struct {
	output          string
	ports           []uint
	templateTimeout time.Duration
	stats           bool
}

// NewPcapCommand returns `netflow FILE`, for the `pcap` group.
func NewPcapCommand() *cobra.Command {
	o := &pcapOptions{}
	c := &cobra.Command{
		Use:   "netflow FILE",
		Short: "Decode the NetFlow v5/v9 and IPFIX export packets carried in UDP in a capture file",
		Long: `Read every UDP datagram of a capture file that holds a NetFlow v5, NetFlow v9 or IPFIX export packet
(or only those to or from --port) and print the flow records in them, decoded as "capfleet collect"
decodes what it receives: templates kept per exporter and observation domain, sequence gaps counted.
Columns: ` + fmt.Sprint(columns),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPcap(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json (one object per line) or csv")
	c.Flags().UintSliceVar(&o.ports, "port", nil, "read only datagrams to or from these UDP ports (default: any datagram that looks like an export packet)")
	c.Flags().DurationVar(&o.templateTimeout, "template-timeout", netflow.DefaultTemplateTimeout, "forget templates not refreshed for this long (capture time); negative never")
	c.Flags().BoolVar(&o.stats, "stats", false, "print decoder counters to stderr at the end")
	return c
}

var columns = []string{"start", "end", "exporter", "version", "domain", "proto", "src_addr", "src_port",
	"dst_addr", "dst_port", "packets", "bytes", "tcp_flags", "tos"}

// fields formats r in the order of columns; times in RFC 3339 with milliseconds, as exporters keep them.
func fields(r *netflow.Record) []string {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	return []string{ts(r.Start), ts(r.End), r.Exporter.String(), u(uint64(r.Version)), u(uint64(r.Domain)),
		u(uint64(r.Proto)), r.SrcAddr.String(), u(uint64(r.SrcPort)), r.DstAddr.String(), u(uint64(r.DstPort)),
		u(r.Packets), u(r.Bytes), u(uint64(r.TCPFlags)), u(uint64(r.ToS))}
}

// looksLikeExport says whether a datagram starts as a NetFlow v5, v9 or IPFIX packet does.
func looksLikeExport(b []byte) bool {
	return len(b) >= 4 && b[0] == 0 && (b[1] == 5 || b[1] == 9 || b[1] == 10)
}

func runPcap(stdout, stderr io.Writer, path string, o *pcapOptions) error {
	var emit func(*netflow.Record)
	w := bufio.NewWriterSize(stdout, 1<<16)
	var flush func() error
	switch o.output {
	case "table":
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		line := func(f []string) {
			for i, s := range f {
				if i > 0 {
					tw.Write([]byte{'\t'})
				}
				tw.Write([]byte(s))
			}
			tw.Write([]byte{'\n'})
		}
		hdr := make([]string, len(columns))
		for i, c := range columns {
			hdr[i] = toUpper(c)
		}
		line(hdr)
		emit = func(r *netflow.Record) { line(fields(r)) }
		flush = tw.Flush
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(columns)
		emit = func(r *netflow.Record) { cw.Write(fields(r)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	case "json":
		enc := json.NewEncoder(w)
		emit = func(r *netflow.Record) { enc.Encode(r) }
		flush = func() error { return nil }
	default:
		return fmt.Errorf("unknown output format %q: want table, json or csv", o.output)
	}
	nd := netflow.NewDecoder(netflow.Config{TemplateTimeout: o.templateTimeout})
	readErr := EachExport(path, o.ports, func(ts time.Time, src *decode.IPHeader, payload []byte) {
		nd.Decode(src.Src, payload, ts, emit)
	})
	if err := flush(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if o.stats {
		s := nd.Stats
		fmt.Fprintf(stderr, "export_packets\t%d\nrecords\t%d\noption_records\t%d\ntemplates\t%d\nsequence_gaps\t%d\nsequence_errors\t%d\ntemplate_errors\t%d\nmalformed\t%d\ntemplates_expired\t%d\nexporters\t%d\n",
			s.Packets, s.Records, s.OptionRecords, s.Templates, s.SequenceGaps, s.SequenceErrors, s.TemplateErrors, s.Malformed, s.Expired, nd.Exporters())
	}
	return readErr
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// EachExport calls fn, in file order, for every UDP datagram of a capture that looks like an export
// packet (and, when ports is not empty, has one of them as source or destination port). payload is
// valid during the call only. A damaged record ends the walk with its error, after the datagrams before it.
func EachExport(path string, ports []uint, fn func(ts time.Time, src *decode.IPHeader, payload []byte)) error {
	r, err := pcapfile.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	dec := decode.NewDecoder()
	dec.HeadersOnly = true
	var p decode.Packet
	for n := 0; ; n++ {
		pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: after %d packets: %w", path, n, err)
		}
		dec.Decode(pkt.Data, pkt.LinkType, pkt.Timestamp, pkt.Length, &p)
		h, payload, ok := netflow.UDPPayload(pkt.Data, &p)
		if !ok || !looksLikeExport(payload) {
			continue
		}
		if len(ports) > 0 && !slices.Contains(ports, uint(h.L4.SrcPort)) && !slices.Contains(ports, uint(h.L4.DstPort)) {
			continue
		}
		fn(pkt.Timestamp, h, payload)
	}
}
