package flow_test

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// cicCaptures are the oracle's inputs: TCP-rich and UDP-rich captures of a few thousand packets.
var cicCaptures = []string{
	"ndpi/gnutella.pcap", // TCP and UDP, many peers
	"ndpi/synscan.pcap",  // thousands of one- and two-packet TCP flows
	"zeek/ssh/ssh.pcap",  // long TCP sessions
	"ndpi/netflix.pcap",  // HTTPS bulk transfers
	"ndpi/telegram.pcap", // UDP calls
	"ndpi/1kxun.pcap",    // mixed, UDP-heavy
}

// cicCheck compares one column of the Python package's output with ours. ok false skips the flow
// for that column (the rule says when the two definitions meet).
type cicCheck struct {
	py, ours string
	rule     func(py float64, ours []float64, col func(string) float64) (want, got float64, ok bool)
}

// same compares the value as it is.
func same(py float64, _ []float64, _ func(string) float64) (float64, float64, bool) {
	return py, math.NaN(), true
}

// cicChecks are the columns both define the same way, with the conditions under which they do.
func cicChecks() []cicCheck {
	var cs []cicCheck
	direct := map[string]string{
		"flow_duration": "Flow Duration", "tot_fwd_pkts": "Total Fwd Packets", "tot_bwd_pkts": "Total Backward Packets",
		"flow_pkts_s": "Flow Packets/s", "fwd_pkts_s": "Fwd Packets/s", "bwd_pkts_s": "Bwd Packets/s",
		"fwd_psh_flags": "Fwd PSH Flags", "bwd_psh_flags": "Bwd PSH Flags", "fwd_urg_flags": "Fwd URG Flags",
		"bwd_urg_flags": "Bwd URG Flags", "fin_flag_cnt": "FIN Flag Count", "syn_flag_cnt": "SYN Flag Count",
		"rst_flag_cnt": "RST Flag Count", "psh_flag_cnt": "PSH Flag Count", "ack_flag_cnt": "ACK Flag Count",
		"urg_flag_cnt": "URG Flag Count", "ece_flag_cnt": "ECE Flag Count",
	}
	for py, ours := range direct {
		cs = append(cs, cicCheck{py, ours, same})
	}
	// Inter-arrival times: the Python package reports zeros for fewer than two gaps, and a population
	// standard deviation where CICFlowMeter's Java (Apache Commons) takes the sample's: ours,
	// rescaled by sqrt((n-1)/n), must equal it.
	iat := func(prefix, ourPrefix, pktsCol string) {
		gaps := func(col func(string) float64) float64 { return col(pktsCol) - 1 }
		for _, s := range []struct{ py, ours string }{{"mean", "Mean"}, {"max", "Max"}, {"min", "Min"}, {"tot", "Total"}} {
			if prefix == "flow_iat" && s.py == "tot" {
				continue // no such column
			}
			cs = append(cs, cicCheck{prefix + "_" + s.py, ourPrefix + " " + s.ours,
				func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
					return py, math.NaN(), gaps(col) >= 2
				}})
		}
		cs = append(cs, cicCheck{prefix + "_std", ourPrefix + " Std",
			func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
				n := gaps(col)
				return py, col(ourPrefix+" Std") * math.Sqrt((n-1)/n), n >= 2
			}})
	}
	iat("flow_iat", "Flow IAT", "Total Fwd Packets+Total Backward Packets")
	iat("fwd_iat", "Fwd IAT", "Total Fwd Packets")
	iat("bwd_iat", "Bwd IAT", "Total Backward Packets")
	// Scapy takes a short frame's Ethernet padding for payload: act_data_pkt_fwd compares where no
	// forward frame was at Ethernet's 60-byte minimum, which the Python package's frame lengths tell.
	cs = append(cs, cicCheck{"fwd_act_data_pkts", "act_data_pkt_fwd", func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		return py, math.NaN(), col("py:fwd_pkt_len_min") > 60
	}})
	udpOnly := func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		return py, math.NaN(), col("Protocol") == 17
	}
	// Header lengths: for TCP the Python package sums IP header lengths, CICFlowMeter TCP's.
	cs = append(cs, cicCheck{"fwd_header_len", "Fwd Header Length", udpOnly},
		cicCheck{"bwd_header_len", "Bwd Header Length", udpOnly},
		cicCheck{"fwd_seg_size_min", "min_seg_size_forward", udpOnly})
	// Packet lengths: the Python package measures whole frames. A UDP datagram over Ethernet and IPv4
	// (the captures' link) has 42 bytes around its payload, unless the frame was padded to Ethernet's
	// 60-byte minimum: for UDP flows without a padded frame in the direction, its lengths are ours
	// plus 42, and its (population) standard deviation is ours rescaled.
	udpLengths := func(dir, ourDir, pktsCol string) {
		unpadded := func(col func(string) float64) bool {
			return col("Protocol") == 17 && col("py:"+dir+"_pkt_len_min") > 60 && col(pktsCol) > 0
		}
		for _, s := range []struct{ py, ours string }{{"max", "Max"}, {"min", "Min"}, {"mean", "Mean"}} {
			cs = append(cs, cicCheck{dir + "_pkt_len_" + s.py, ourDir + " Packet Length " + s.ours,
				func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
					return py, col(ourDir+" Packet Length "+s.ours) + 42, unpadded(col)
				}})
		}
		cs = append(cs, cicCheck{dir + "_pkt_len_std", ourDir + " Packet Length Std",
			func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
				n := col(pktsCol)
				return py, col(ourDir+" Packet Length Std") * math.Sqrt((n-1)/n), unpadded(col)
			}})
		total := map[string]string{"fwd": "Total Length of Fwd Packets", "bwd": "Total Length of Bwd Packets"}[dir]
		cs = append(cs, cicCheck{"totlen_" + dir + "_pkts", total,
			func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
				return py, col(total) + 42*col(pktsCol), unpadded(col)
			}})
	}
	udpLengths("fwd", "Fwd", "Total Fwd Packets")
	udpLengths("bwd", "Bwd", "Total Backward Packets")
	// The same for the whole flow, when neither direction has a padded frame.
	unpaddedFlow := func(col func(string) float64) bool {
		return col("Protocol") == 17 && col("py:fwd_pkt_len_min") > 60 &&
			(col("Total Backward Packets") == 0 || col("py:bwd_pkt_len_min") > 60)
	}
	plus42 := map[string]string{"pkt_len_max": "Max Packet Length", "pkt_len_min": "Min Packet Length", "pkt_len_mean": "Packet Length Mean",
		"pkt_size_avg": "Average Packet Size", "fwd_seg_size_avg": "Avg Fwd Segment Size"}
	for py, ours := range plus42 {
		cs = append(cs, cicCheck{py, ours, func(v float64, _ []float64, col func(string) float64) (float64, float64, bool) {
			return v, col(ours) + 42, unpaddedFlow(col)
		}})
	}
	cs = append(cs, cicCheck{"pkt_len_std", "Packet Length Std", func(v float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		n := col("Total Fwd Packets+Total Backward Packets")
		return v, col("Packet Length Std") * math.Sqrt((n-1)/n), unpaddedFlow(col)
	}}, cicCheck{"pkt_len_var", "Packet Length Variance", func(v float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		n := col("Total Fwd Packets+Total Backward Packets")
		return v, col("Packet Length Variance") * (n - 1) / n, unpaddedFlow(col)
	}}, cicCheck{"flow_byts_s", "Flow Bytes/s", func(v float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		return v, col("Flow Bytes/s") + 42*col("Flow Packets/s"), unpaddedFlow(col)
	}})
	// CICFlowMeter's Down/Up Ratio divides packet counts as integers, the Python package does not.
	cs = append(cs, cicCheck{"down_up_ratio", "Down/Up Ratio", func(py float64, _ []float64, _ func(string) float64) (float64, float64, bool) {
		return math.Floor(py), math.NaN(), true
	}})
	// The Python package's initial forward window is the first non-zero one, and 0 without TCP.
	cs = append(cs, cicCheck{"init_fwd_win_byts", "Init_Win_bytes_forward", func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
		ours := col("Init_Win_bytes_forward")
		if ours == -1 {
			return py, 0, true
		}
		return py, math.NaN(), ours != 0
	}})
	// Subflows: the Python package copies the totals; CICFlowMeter divides them by the number of
	// subflows, which is one when no gap exceeds a second.
	for _, s := range []struct{ py, ours string }{{"subflow_fwd_pkts", "Subflow Fwd Packets"}, {"subflow_bwd_pkts", "Subflow Bwd Packets"}} {
		cs = append(cs, cicCheck{s.py, s.ours, func(py float64, _ []float64, col func(string) float64) (float64, float64, bool) {
			return py, math.NaN(), col("Flow IAT Max") <= 1e6
		}})
	}
	return cs
}

// cicExempt are the Python package's columns that differ from CICFlowMeter's by definition.
var cicExempt = map[string]string{
	"totlen_*_pkts, *pkt_len_*, pkt_size_avg, *_seg_size_avg, flow_byts_s (TCP, and UDP with a padded frame); subflow_*_byts; bwd_seg_size_avg": "the Python package measures whole frames (len(packet), link header included), CICFlowMeter the TCP or UDP payload: for UDP the 42 bytes around a payload are added back, but a TCP header's length varies with its options, and subflow bytes and bwd_seg_size_avg are copies of other columns there (totlen_*, bwd_pkt_len_mean), compared already",
	"fwd_header_len, bwd_header_len, fwd_seg_size_min (TCP)":                                                                                    "the Python package counts the IP header of a TCP packet (8 for UDP); CICFlowMeter the TCP header",
	"init_bwd_win_byts":       "the Python package keeps the last backward window, CICFlowMeter the first",
	"active_*, idle_*":        "the Python package's activity timeout is 5 ms behind a 1 ms gate (constants.py); CICFlowMeter's is 5 s",
	"*_b_avg, *_blk_rate_avg": "the Python package's bulk clump timeout is 1 ms; CICFlowMeter's is 1 s",
	"cwr_flag_count":          "the Python package copies fwd_urg_flags into it",
}

// cicflowmeter is the command hack/cicflowmeter.sh installs.
func cicflowmeter(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(testenv.Root(t), "hack", "cicflowmeter.sh")).Output()
	if err != nil {
		testenv.Missing(t, "cicflowmeter from PyPI is the oracle of the CIC features: run hack/deps.sh (%v)", err)
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testenv.Missing(t, "cicflowmeter reads captures through tcpdump: run hack/deps.sh")
	}
	return strings.TrimSpace(string(out))
}

// pyFlow is one row of the Python package's CSV.
type pyFlow map[string]string

func runCICFlowMeter(t *testing.T, cmd, pcap string) []pyFlow {
	out := filepath.Join(t.TempDir(), "flows.csv")
	c := exec.Command(cmd, "-f", pcap, "-c", out)
	c.Env = append(os.Environ(), "TZ=UTC") // its Timestamp is in local time
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cicflowmeter %s: %v\n%s", pcap, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("reading cicflowmeter's csv: %v", err)
	}
	var flows []pyFlow
	for _, r := range rows[min(1, len(rows)):] {
		m := pyFlow{}
		for i, h := range rows[0] {
			m[h] = r[i]
		}
		flows = append(flows, m)
	}
	return flows
}

func (p pyFlow) num(t *testing.T, k string) float64 {
	v, err := strconv.ParseFloat(p[k], 64)
	if err != nil {
		t.Fatalf("cicflowmeter column %s: %v", k, err)
	}
	return v
}

// ourCIC runs a capture through a table with the CIC features.
func ourCIC(t *testing.T, rel string) []flow.CIC {
	var rows []flow.CIC
	tbl := flow.New(flow.Config{Features: flow.FeaturesCIC, OnEnd: func(f *flow.Flow, _ flow.EndReason) {
		if f.CIC == nil {
			t.Fatal("a flow ended without its CIC features")
		}
		rows = append(rows, *f.CIC)
	}})
	d := decode.NewDecoder()
	var p decode.Packet
	for _, fr := range loadCapture(t, rel) {
		d.Decode(fr.data, fr.pkt.LinkType, fr.pkt.Timestamp, fr.pkt.Length, &p)
		tbl.Add(&p)
	}
	tbl.Flush()
	return rows
}

// cicKey is what pairs a flow of both: the forward 5-tuple and the start to the second (the
// Python package's Timestamp), with the packet counts each way, so that only flows with the same
// boundaries pair.
func cicKey(src, sport, dst, dport, proto, ts string, fwd, bwd float64) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%g|%g", proto, src, sport, dst, dport, ts, fwd, bwd)
}

// TestCICFlowMeterParity compares the CIC features with the PyPI cicflowmeter's on real captures,
// column by column, for the flows both cut the same way.
func TestCICFlowMeterParity(t *testing.T) {
	cmd := cicflowmeter(t)
	col := map[string]int{}
	for i, c := range flow.CICColumns {
		col[c] = i
	}
	checks := cicChecks()
	type tally struct{ agree, compared int }
	per := map[string]*tally{}
	for _, c := range checks {
		per[c.py] = &tally{}
	}
	paired, pyTotal := 0, 0
	for _, rel := range cicCaptures {
		path := filepath.Join(filepath.Dir(testenv.Root(t)), "shared", "pcaps", rel)
		ours := map[string][]*flow.CIC{}
		rows := ourCIC(t, rel)
		for i := range rows {
			r := &rows[i]
			k := cicKey(r.Src.String(), strconv.Itoa(int(r.SrcPort)), r.Dst.String(), strconv.Itoa(int(r.DstPort)),
				strconv.Itoa(int(r.Protocol)), r.Start.UTC().Format("2006-01-02 15:04:05"), r.V[col["Total Fwd Packets"]], r.V[col["Total Backward Packets"]])
			ours[k] = append(ours[k], r)
		}
		py := runCICFlowMeter(t, cmd, path)
		pyTotal += len(py)
		filePaired := 0
		for _, p := range py {
			k := cicKey(p["src_ip"], p["src_port"], p["dst_ip"], p["dst_port"], p["protocol"], p["timestamp"], p.num(t, "tot_fwd_pkts"), p.num(t, "tot_bwd_pkts"))
			if len(ours[k]) != 1 {
				continue // other boundaries (its 90 s and 240 s cuts, Zeek's closes), or ambiguous within a second
			}
			o := ours[k][0]
			filePaired++
			value := func(name string) float64 {
				switch name {
				case "Protocol":
					return float64(o.Protocol)
				case "py:fwd_pkt_len_min", "py:bwd_pkt_len_min":
					return p.num(t, strings.TrimPrefix(name, "py:"))
				case "Total Fwd Packets+Total Backward Packets":
					return o.V[col["Total Fwd Packets"]] + o.V[col["Total Backward Packets"]]
				}
				return o.V[col[name]]
			}
			for _, c := range checks {
				want, got, ok := c.rule(p.num(t, c.py), o.V[:], value)
				if !ok {
					continue
				}
				if math.IsNaN(got) {
					got = value(c.ours)
				}
				tl := per[c.py]
				tl.compared++
				if near(want, got) {
					tl.agree++
				} else if tl.compared-tl.agree <= 3 {
					t.Errorf("%s: flow %s %s:%s > %s:%s at %s: %s (%s) is %v, cicflowmeter's %s is %v",
						rel, p["protocol"], p["src_ip"], p["src_port"], p["dst_ip"], p["dst_port"], p["timestamp"], c.ours, "ours", got, c.py, want)
				}
			}
		}
		t.Logf("%s: cicflowmeter %d flows, capfleet %d, paired %d", rel, len(py), len(rows), filePaired)
		paired += filePaired
	}
	// Pairing must not be what makes the test pass: most of the oracle's flows have capfleet's boundaries.
	if paired*2 < pyTotal {
		t.Errorf("only %d of cicflowmeter's %d flows paired with one of ours", paired, pyTotal)
	}
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	// The table goes to .cache/cicflowmeter-parity.txt too, which hack/test.sh prints (go test hides
	// a passing test's log).
	var report strings.Builder
	fmt.Fprintf(&report, "CIC features against cicflowmeter (PyPI): %d of its %d flows paired, on %d captures\n", paired, pyTotal, len(cicCaptures))
	for _, n := range names {
		tl := per[n]
		if tl.compared == 0 {
			t.Errorf("column %s was never compared", n)
		}
		fmt.Fprintf(&report, "  %-18s %5d/%5d agree\n", n, tl.agree, tl.compared)
	}
	for cols, why := range cicExempt {
		fmt.Fprintf(&report, "  not compared: %s: %s\n", cols, why)
	}
	t.Log(report.String())
	if !t.Failed() {
		_ = os.WriteFile(filepath.Join(testenv.Root(t), ".cache", "cicflowmeter-parity.txt"), []byte(report.String()), 0o644)
	}
}

// near is equality within floating-point tolerance: the Python package computes times from
// decimal seconds, we from integer nanoseconds.
func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-6*max(math.Abs(a), math.Abs(b))+1e-3
}
