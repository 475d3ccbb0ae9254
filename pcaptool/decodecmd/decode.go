// Package decodecmd holds the `capfleet pcap decode` and `capfleet pcap flows` commands: the
// offline faces of the pipeline's decoder and flow table, for analysts and for parity tests
// against tshark and Zeek.
package decodecmd

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/packetjson"
)

type decodeOptions struct {
	fields string
	output string
	filter string
	// display is a Wireshark display filter (tshark -Y), applied after decoding.
	display string
	stats   bool
	// records prints packetjson's records instead of the chosen fields.
	records bool
}

// NewDecodeCommand returns `decode FILE`: one line per packet with the fields asked for, named
// and formatted as `tshark -T fields -E separator=/t -E occurrence=a` prints them.
func NewDecodeCommand() *cobra.Command {
	o := &decodeOptions{}
	c := &cobra.Command{
		Use:   "decode FILE",
		Short: "Print chosen fields of every packet, named and formatted as tshark -T fields prints them",
		Long: `Print chosen fields of every packet of a capture file (pcap or pcapng, optionally gzipped).

Fields are named as in tshark (frame.number, eth.src, vlan.id, ip.src, tcp.flags, dns.qry.name, ...)
and formatted as "tshark -T fields -E separator=/t -E occurrence=a" prints them: when a field occurs
more than once in a packet (a tunnel, an ICMP error quoting a header) every occurrence is shown, in
the order of the headers on the wire, separated by commas (tsv) or as an array (json). A field the
packet lacks is empty (tsv) or left out (json). Known fields: ` + strings.Join(decode.FieldNames(), ", ") + `

-Y FILTER prints only the packets a Wireshark display filter keeps, with tshark 4's meaning (reassembly
off). Its fields and protocols: ` + strings.Join(displayfilter.FieldNames(), ", "),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDecode(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
		},
	}
	c.Flags().StringVar(&o.fields, "fields", strings.Join(decode.DefaultFields, ","), "comma-separated tshark field names")
	c.Flags().StringVarP(&o.output, "output", "o", "tsv", "output format: tsv or json (one object per line)")
	c.Flags().StringVar(&o.filter, "filter", "", "print only packets matching this tcpdump filter expression")
	c.Flags().StringVarP(&o.display, "display-filter", "Y", "", "print only packets matching this Wireshark display filter (tshark -Y syntax)")
	c.Flags().BoolVar(&o.stats, "stats", false, "print decode counters by reason to stderr at the end")
	c.Flags().BoolVar(&o.records, "json-records", false, "print one JSON record per packet with every IP, TCP and UDP header field, keyed by tshark field names, as a PacketPipeline's packet-records sink publishes them (--fields and -o are ignored)")
	return c
}

func runDecode(stdout, stderr io.Writer, path string, o *decodeOptions) error {
	if o.records {
		return runRecords(stdout, stderr, path, o)
	}
	fs, err := decode.LookupFields(strings.Split(o.fields, ","))
	if err != nil {
		return err
	}
	var appendLine func(dst []byte, fs []decode.Field, n int, p *decode.Packet) []byte
	switch o.output {
	case "tsv":
		appendLine = appendTSV
	case "json":
		appendLine = appendJSON
	default:
		return fmt.Errorf("unknown output format %q: want tsv or json", o.output)
	}
	src, err := openPackets(path, o.filter, o.display, namesPayloadField(fs))
	if err != nil {
		return err
	}
	defer src.Close()
	return writeLines(stdout, stderr, src, o.stats, func(dst []byte, n int, p *decode.Packet) []byte {
		return appendLine(dst, fs, n, p)
	})
}

// runRecords prints packetjson's record of each packet, one a line.
func runRecords(stdout, stderr io.Writer, path string, o *decodeOptions) error {
	src, err := openPackets(path, o.filter, o.display, false)
	if err != nil {
		return err
	}
	defer src.Close()
	return writeLines(stdout, stderr, src, o.stats, func(dst []byte, n int, p *decode.Packet) []byte {
		return append(packetjson.Append(dst, n, p, src.frame), '\n')
	})
}

// writeLines writes the line appendLine makes of each packet of src, buffered, then the packet
// counts when stats asks for them. Lines are appended to the buffer itself, which goes out when it
// holds writeChunk bytes: no copy of each line. After a failed write the rest go unwritten, and the
// error is returned once every packet is read.
func writeLines(stdout, stderr io.Writer, src *packets, stats bool, appendLine func(dst []byte, n int, p *decode.Packet) []byte) error {
	buf := make([]byte, 0, writeChunk+writeChunk/4)
	var werr error
	flush := func() {
		if werr == nil && len(buf) > 0 {
			_, werr = stdout.Write(buf)
		}
		buf = buf[:0]
	}
	err := src.each(func(n int, p *decode.Packet) {
		buf = appendLine(buf, n, p)
		if len(buf) >= writeChunk {
			flush()
		}
	})
	flush()
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if stats {
		src.printStats(stderr)
	}
	return nil
}

// writeChunk is how much output writeLines gathers before a write.
const writeChunk = 1 << 17

// namesPayloadField says whether an output field is read from beyond the transport header, so
// the decoder must go on past it.
func namesPayloadField(fs []decode.Field) bool {
	for _, f := range fs {
		if strings.HasPrefix(f.Name, "dns") {
			return true
		}
	}
	return false
}

func appendTSV(dst []byte, fs []decode.Field, n int, p *decode.Packet) []byte {
	return decode.AppendTSV(dst, fs, n, p)
}

func appendJSON(dst []byte, fs []decode.Field, n int, p *decode.Packet) []byte {
	dst = append(dst, '{')
	first := true
	var val []byte
	for _, f := range fs {
		var count int
		// NUL cannot occur in a value (DNS names escape control bytes), so it splits occurrences.
		val, count = f.AppendSep(val[:0], n, p, 0)
		if count == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, f.Name)
		dst = append(dst, ':')
		if count > 1 {
			dst = append(dst, '[')
		}
		for i, v := range bytes.Split(val, []byte{0}) {
			if i > 0 {
				dst = append(dst, ',')
			}
			if f.Numeric {
				dst = append(dst, v...)
			} else {
				dst = appendJSONString(dst, string(v))
			}
		}
		if count > 1 {
			dst = append(dst, ']')
		}
	}
	return append(dst, '}', '\n')
}

// appendJSONString quotes s for JSON; DNS names may hold any byte, already escaped as text.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c >= 0x7f:
			dst = append(dst, fmt.Sprintf(`\u%04x`, c)...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
