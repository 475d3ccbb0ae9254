package nfcmd

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/pcaptool/decodecmd"
	"capfleet.dev/capfleet/processor/flow"
)

// TestPcapFlowsIPFIXExport: `capfleet pcap flows FILE --ipfix` sends its flows to nfcapd and to a
// socket of the test. nfdump shows, for every flow `pcap flows` prints, one record each way that
// carried packets (addresses, ports, protocol, packets, IP bytes, first and last packet times), and
// tshark's IPFIX dissector reads the same records from the datagrams on the wire.
func TestPcapFlowsIPFIXExport(t *testing.T) {
	needTools(t, "nfcapd", "nfdump", "tshark")
	for _, capture := range oracleCaptures(t) {
		t.Run(filepath.Base(capture), func(t *testing.T) {
			nf := startNfcapd(t)
			l := listenUDP(t)
			cmd := decodecmd.NewFlowsCommand()
			var out, errOut bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			cmd.SetArgs([]string{capture, "-o", "json", "--stats", "--ipfix", "127.0.0.1:" + nf.port + ",127.0.0.1:" + l.port()})
			if err := cmd.Execute(); err != nil {
				t.Fatalf("pcap flows: %v\n%s", err, errOut.String())
			}
			var want []oracleFlow
			dec := json.NewDecoder(&out)
			for dec.More() {
				var r flow.Record
				if err := dec.Decode(&r); err != nil {
					t.Fatal(err)
				}
				want = append(want, directions(t, &r)...)
			}
			dgs := l.quiet()
			nf.stop(t)
			sameFlows(t, "nfdump of the export", 0, nf.flows(t), want)
			if got := nf.sequenceErrors(t); got != 0 {
				t.Errorf("nfcapd counted %d sequence errors in our export", got)
			}

			// The wire, as tshark reads it (no times: tshark prints them in the local format).
			file := filepath.Join(t.TempDir(), "export.pcap")
			writePcap(t, file, l.port(), dgs)
			tshark := exec.Command("tshark", "-r", file, "-d", "udp.port=="+l.port()+",cflow", "-T", "fields", "-E", "occurrence=a",
				"-e", "cflow.srcaddr", "-e", "cflow.srcaddrv6", "-e", "cflow.dstaddr", "-e", "cflow.dstaddrv6", "-e", "cflow.srcport",
				"-e", "cflow.dstport", "-e", "cflow.protocol", "-e", "cflow.packets", "-e", "cflow.octets")
			tout, err := tshark.Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			var wire []oracleFlow
			for line := range strings.Lines(string(tout)) {
				wire = append(wire, tsharkFlows(t, strings.TrimRight(line, "\n"))...)
			}
			var wantWire []oracleFlow
			for _, f := range want {
				f.start, f.end = 0, 0
				if f.proto == 1 || f.proto == 58 {
					f.dport = 0 // tshark shows ICMP's type and code in fields of their own
				}
				wantWire = append(wantWire, f)
			}
			sameFlows(t, "tshark of the export", 0, wire, wantWire)
		})
	}
}

// directions are the unidirectional records a flow is exported as.
func directions(t *testing.T, r *flow.Record) []oracleFlow {
	t.Helper()
	orig, resp := netip.MustParseAddr(r.OrigH), netip.MustParseAddr(r.RespH)
	startUs := int64(math.Round(r.TSSeconds * 1e6))
	endUs := startUs + int64(math.Round(r.Duration*1e6))
	sp, dp := r.OrigP, r.RespP
	if r.IPProto == 1 || r.IPProto == 58 {
		sp, dp = 0, r.OrigP<<8|r.RespP
	}
	var out []oracleFlow
	if r.OrigPkts > 0 {
		out = append(out, oracleFlow{start: startUs / 1000, end: endUs / 1000, src: orig, dst: resp, sport: sp, dport: dp, proto: r.IPProto, packets: r.OrigPkts, octects: r.OrigIPBytes})
	}
	if r.RespPkts > 0 {
		if r.IPProto != 1 && r.IPProto != 58 {
			sp, dp = dp, sp
		}
		out = append(out, oracleFlow{start: startUs / 1000, end: endUs / 1000, src: resp, dst: orig, sport: sp, dport: dp, proto: r.IPProto, packets: r.RespPkts, octects: r.RespIPBytes})
	}
	return out
}

// tsharkFlows splits one frame's fields (each a comma-separated list, one value per record) into
// records; IPv4 and IPv6 records of one frame come in template order, IPv4 first.
func tsharkFlows(t *testing.T, line string) []oracleFlow {
	t.Helper()
	col := strings.Split(line, "\t")
	if len(col) != 9 {
		t.Fatalf("tshark line %q", line)
	}
	list := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	srcs := append(list(col[0]), list(col[1])...)
	dsts := append(list(col[2]), list(col[3])...)
	sps, dps, prs, pks, bys := list(col[4]), list(col[5]), list(col[6]), list(col[7]), list(col[8])
	if len(dsts) != len(srcs) || len(sps) != len(srcs) || len(dps) != len(srcs) || len(prs) != len(srcs) || len(pks) != len(srcs) || len(bys) != len(srcs) {
		t.Fatalf("tshark fields do not line up: %q", line)
	}
	u := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("tshark number %q", s)
		}
		return v
	}
	var out []oracleFlow
	for i := range srcs {
		out = append(out, oracleFlow{src: netip.MustParseAddr(srcs[i]), dst: netip.MustParseAddr(dsts[i]), sport: uint16(u(sps[i])), dport: uint16(u(dps[i])),
			proto: uint8(u(prs[i])), packets: u(pks[i]), octects: u(bys[i])})
	}
	return out
}
