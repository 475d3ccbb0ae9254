package query

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/processor/store"
)

// pipelineCapture is a capture replayed through Kafka and `capfleet process`, moved in time so that
// its first packet falls on Base, a whole second: tshark's io,stat intervals count from the first
// packet, the pipeline's windows from the epoch, and that makes them the same.
type pipelineCapture struct {
	Path      string
	Base, End time.Time
	Frames    int
}

// pipelineRun is what replayCaptures leaves: the captures, the keyspace and the query flags that reach it.
type pipelineRun struct {
	captures []pipelineCapture
	ks       string
	conn     []string // --keyspace and the Cassandra flags
	kcfg     kafkaconn.Config
	ccfg     cassconn.Config
	topic    string
}

const trafficSensor = "traffic"

// replayCaptures produces the captures into one topic of three partitions, the n-th moved to start n
// hours after base, and runs `capfleet process` over it with flows, 1 s traffic counters and 1 min edge
// rollups until every record is committed.
func replayCaptures(t *testing.T, base time.Time, paths ...string) pipelineRun {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		testenv.Missing(t, "tshark is needed as the oracle: run hack/deps.sh")
	}
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	topic := kafkatest.NewTopic(t, kcfg, 3)
	run := pipelineRun{ks: ks, kcfg: kcfg, ccfg: ccfg, topic: topic,
		conn: []string{"--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port)}}
	if ccfg.SecretDir != "" {
		run.conn = append(run.conn, "--cassandra-secret-dir", ccfg.SecretDir)
	}
	for i, p := range paths {
		frames := pipelinetest.ReadCapture(t, p)
		first, last := pipelinetest.TimeSpan(frames)
		start := base.Add(time.Duration(i) * time.Hour)
		for j := range frames {
			frames[j].Meta.Timestamp = start.Add(frames[j].Meta.Timestamp.Sub(first))
		}
		pipelinetest.Produce(t, kcfg, topic, frames)
		run.captures = append(run.captures, pipelineCapture{Path: p, Base: start, End: start.Add(last.Sub(first)), Frames: len(frames)})
	}
	runProcess(t, run, "traffic-")
	return run
}

// runProcess runs `capfleet process` on the run's topic as a new consumer group until it committed
// every record and its quiet partitions stored their counters, then stops it.
func runProcess(t *testing.T, run pipelineRun, groupPrefix string) {
	t.Helper()
	group := groupPrefix + strconv.FormatInt(time.Now().UnixNano(), 36)
	args := append([]string{"--topic", run.topic, "--group", group, "--sensor", trafficSensor, "--store-flows",
		"--flow-idle-timeout", "2s", "--commit-interval", "300ms", "--traffic-step", "1s", "--edge-window", "1m",
		"--metrics-addr", "", "--health-addr", "", "--kafka-brokers", strings.Join(run.kcfg.Brokers, ",")}, run.conn...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := processcmd.NewCommand()
	cmd.SetArgs(args)
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	pipelinetest.Eventually(t, 3*time.Minute, "every record committed", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, run.kcfg, group, run.topic)
		return err == nil && c == end && end > 0, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})
	cancel() // the final checkpoint stores every open counter
	if err := <-done; err != nil {
		t.Fatalf("process: %v\n%s", err, tail(stderr.String(), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ioStat is `tshark -q -z io,stat,STEP[,,FILTER...]`: per interval (its start in seconds from the first
// packet), the frames and bytes of each column (the first: all frames).
func ioStat(t *testing.T, path string, step int, filters ...string) map[int][]Counts {
	t.Helper()
	arg := "io,stat," + strconv.Itoa(step)
	if len(filters) > 0 {
		arg += ",," + strings.Join(filters, ",")
	}
	out, err := exec.Command("tshark", "-n", "-r", path, "-q", "-z", arg).Output()
	if err != nil {
		t.Fatalf("tshark -z %s: %v", arg, err)
	}
	res := map[int][]Counts{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "<>") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		for len(cells) > 0 && strings.TrimSpace(cells[len(cells)-1]) == "" {
			cells = cells[:len(cells)-1] // tshark pads wide tables with an empty cell
		}
		startText, _, _ := strings.Cut(cells[0], "<>")
		start, err := strconv.Atoi(strings.TrimSpace(startText))
		if err != nil || len(cells) != 1+2*(len(filters)+1) {
			t.Fatalf("tshark io,stat line %q", line)
		}
		for i := 1; i < len(cells); i += 2 {
			frames, err1 := strconv.ParseUint(strings.TrimSpace(cells[i]), 10, 64)
			bytes, err2 := strconv.ParseUint(strings.TrimSpace(cells[i+1]), 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("tshark io,stat line %q", line)
			}
			res[start] = append(res[start], Counts{frames, bytes})
		}
	}
	if len(res) == 0 {
		t.Fatalf("tshark -z %s printed no interval:\n%s", arg, out)
	}
	return res
}

// localAddr is a display filter for "field is what the pipeline calls a local address" (IPv4). Sets
// (field in {...}) would read better, but io,stat splits its argument at commas.
func localAddr(field string) string {
	var or []string
	for _, n := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16"} {
		or = append(or, field+" == "+n)
	}
	return "(" + strings.Join(or, " || ") + ")"
}

// query traffic --step 1s gives, for captures replayed through Kafka and the pipeline, the frames and
// bytes per second that tshark's io,stat counts in the same files, and the TCP, UDP, outgoing and
// internal shares that io,stat counts with the matching filters; --step 1m is their sum; a second
// consumer group replaying the whole topic rewrites the same rows instead of doubling them.
func TestQueryTrafficAgreesWithTsharkIOStat(t *testing.T) {
	captures := []string{
		pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"),
		filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"),
		pipelinetest.SharedPcap(t, "ndpi/443-firefox.pcap"),
	}
	run := replayCaptures(t, time.Date(2024, 5, 4, 10, 0, 0, 0, time.UTC), captures...)
	check := func(when string) {
		for _, c := range run.captures {
			filters := []string{"ip.proto#1 == 6", "ip.proto#1 == 17",
				localAddr("ip.src#1") + " && !" + localAddr("ip.dst#1"),
				localAddr("ip.src#1") + " && " + localAddr("ip.dst#1")}
			want := ioStat(t, c.Path, 1, filters...)
			out, err := run.query("traffic", "--sensor", trafficSensor, "--step", "1s", "-o", "json",
				"--from", c.Base.Format(time.RFC3339Nano), "--to", c.End.Format(time.RFC3339Nano))
			if err != nil {
				t.Fatal(err)
			}
			got := map[int]TrafficPoint{}
			dec := json.NewDecoder(strings.NewReader(out))
			var total uint64
			for dec.More() {
				var p TrafficPoint
				if err := dec.Decode(&p); err != nil {
					t.Fatal(err)
				}
				got[int(p.Start.Sub(c.Base)/time.Second)] = p
				total += p.Packets
			}
			if total != uint64(c.Frames) {
				t.Errorf("%s %s: %d packets over all steps, the capture has %d", when, filepath.Base(c.Path), total, c.Frames)
			}
			for sec, w := range want {
				g := got[sec]
				if w[0].Packets == 0 && g.Packets == 0 {
					continue
				}
				if (Counts{g.Packets, g.Bytes}) != w[0] || g.Proto["tcp"] != w[1] || g.Proto["udp"] != w[2] || g.Out != w[3] || g.Internal != w[4] {
					t.Errorf("%s %s second %d: total %d/%d tcp %+v udp %+v out %+v internal %+v; tshark %+v", when, filepath.Base(c.Path), sec,
						g.Packets, g.Bytes, g.Proto["tcp"], g.Proto["udp"], g.Out, g.Internal, w)
				}
			}
			for sec := range got {
				if _, ok := want[sec]; !ok {
					t.Errorf("%s %s: a step at second %d, outside tshark's intervals", when, filepath.Base(c.Path), sec)
				}
			}
		}
	}
	check("first run")

	// A minute is the sum of its seconds, in every output form.
	c := run.captures[1] // ftp-bruteforce: 59 s
	all := ioStat(t, c.Path, 1)
	var frames, bytes uint64
	for _, w := range all {
		frames += w[0].Packets
		bytes += w[0].Bytes
	}
	csvOut, err := run.query("traffic", "--sensor", trafficSensor, "--step", "1m", "-o", "csv",
		"--from", c.Base.Format(time.RFC3339), "--to", c.End.Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][1] != "packets" || rows[1][1] != u(frames) || rows[1][2] != u(bytes) {
		t.Errorf("--step 1m -o csv: %q (%v); want one minute of %d frames and %d bytes", rows, err, frames, bytes)
	}
	table, err := run.query("traffic", "--sensor", trafficSensor, "--step", "1m",
		"--from", c.Base.Format(time.RFC3339), "--to", c.End.Format(time.RFC3339Nano))
	if err != nil || strings.Count(table, "\n") != 2 || !strings.Contains(table, fmt.Sprintf(" %d ", frames)) {
		t.Errorf("--step 1m table (%v):\n%s", err, table)
	}
	if _, err := run.query("traffic", "--sensor", trafficSensor, "--step", "1500ms", "--from", c.Base.Format(time.RFC3339),
		"--to", c.End.Format(time.RFC3339Nano)); err == nil ||
		!strings.Contains(err.Error(), "multiple") {
		t.Errorf("--step 1500ms over 1s counters: %v", err)
	}
	if _, err := run.query("traffic", "--from", c.Base.Format(time.RFC3339)); err == nil || !strings.Contains(err.Error(), "--sensor") {
		t.Errorf("no --sensor: %v", err)
	}

	// Every record again, by another group: the same keys, the same totals.
	runProcess(t, run, "traffic-again-")
	check("after a second group replayed the topic")
}

func (r pipelineRun) query(args ...string) (string, error) {
	return run(append(args, r.conn...)...)
}

// convIP is `tshark -q -z conv,ip -z conv,ipv6`: the frames between each pair of addresses ("a b", the
// smaller first). Its byte columns carry units (kB, MB) in this version, so only frames are read.
func convIP(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", path, "-q", "-z", "conv,ip", "-z", "conv,ipv6").Output()
	if err != nil {
		t.Fatalf("tshark -z conv,ip: %v", err)
	}
	res := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != "<->" {
			continue
		}
		a, b := mustAddr(t, f[0]), mustAddr(t, f[2])
		if pairOrder(b, a) {
			a, b = b, a
		}
		// frames <-, bytes and unit, frames ->, bytes and unit, frames in total...
		in, err1 := strconv.ParseUint(f[3], 10, 64)
		outF, err2 := strconv.ParseUint(f[6], 10, 64)
		total, err3 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || in+outF != total {
			t.Fatalf("tshark conv line %q", line)
		}
		res[a.String()+" "+b.String()] += total
	}
	return res
}

type graphJSON struct {
	Graph map[string]string
	Nodes []struct{ ID string }
	Links []struct {
		Source, Target string
		Flows, Packets uint64
		Bytes          uint64 `json:"ip_bytes"`
		Windows        []struct {
			Start time.Time
			Flows uint64
		}
	}
}

func (r pipelineRun) graph(t *testing.T, args ...string) (graphJSON, string) {
	t.Helper()
	cmd := NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(append([]string{"graph", "-o", "json"}, args...), r.conn...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("graph %v: %v\n%s", args, err, errOut.String())
	}
	var g graphJSON
	if err := json.Unmarshal(out.Bytes(), &g); err != nil {
		t.Fatalf("graph json: %v", err)
	}
	return g, errOut.String()
}

// query graph of a long range reads the pipeline's edge rollups, and gives the same hosts, pairs,
// packets, IP bytes and flows as the graph of the stored flows, the frames per pair that tshark's
// conv,ip counts and the IP bytes per pair that tshark dissects; a short range reads the flows.
func TestQueryGraphFromRollupsEqualsFlowsAndTshark(t *testing.T) {
	captures := []string{
		pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"),
		filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"),
		pipelinetest.SharedPcap(t, "ndpi/443-firefox.pcap"),
	}
	base := time.Date(2024, 5, 5, 10, 0, 0, 0, time.UTC)
	run := replayCaptures(t, base, captures...)
	from, to := base.Format(time.RFC3339), base.Add(3*time.Hour).Format(time.RFC3339)

	rolled, stderr := run.graph(t, "--from", from, "--to", to, "--window", "1m")
	if rolled.Graph["source"] != SourceRollups || !strings.Contains(stderr, "from the rollups") {
		t.Fatalf("a 3 h range: built from %q (%s)", rolled.Graph["source"], stderr)
	}
	flows, _ := run.graph(t, "--from", from, "--to", to, "--window", "1m", "--source", "flows")
	if flows.Graph["source"] != SourceFlows {
		t.Fatalf("--source flows: built from %q", flows.Graph["source"])
	}
	frames := map[string]uint64{}
	for _, c := range run.captures {
		for k, v := range convIP(t, c.Path) {
			frames[k] += v
		}
	}
	ipBytes := tsharkTalkers(t, captures, ByPair)
	if len(rolled.Links) != len(frames) || len(rolled.Links) != len(flows.Links) || len(rolled.Nodes) != len(flows.Nodes) || len(frames) < 10 {
		t.Fatalf("rollups: %d pairs and %d hosts; flows: %d and %d; tshark conv: %d pairs",
			len(rolled.Links), len(rolled.Nodes), len(flows.Links), len(flows.Nodes), len(frames))
	}
	var rolledFlows uint64
	for i, l := range rolled.Links {
		k := l.Source + " " + l.Target
		f := flows.Links[i]
		w := ipBytes[k]
		if l.Source != f.Source || l.Target != f.Target || l.Packets != f.Packets || l.Bytes != f.Bytes || l.Flows != f.Flows {
			t.Errorf("pair %s: rollups %d packets, %d bytes, %d flows; flows %s %s %d, %d, %d", k, l.Packets, l.Bytes, l.Flows,
				f.Source, f.Target, f.Packets, f.Bytes, f.Flows)
		}
		if l.Packets != frames[k] || l.Bytes != w.BytesOut+w.BytesIn {
			t.Errorf("pair %s: %d packets and %d IP bytes; tshark conv,ip %d frames, ip.len %d", k, l.Packets, l.Bytes, frames[k], w.BytesOut+w.BytesIn)
		}
		if len(l.Windows) == 0 || l.Windows[0].Start.Before(base) {
			t.Errorf("pair %s: windows %+v", k, l.Windows)
		}
		for _, w := range l.Windows {
			rolledFlows += w.Flows
		}
	}
	var total uint64
	for _, l := range flows.Links {
		total += l.Flows
	}
	if rolledFlows != total {
		t.Errorf("the rollups' windows start %d flows, the flows are %d", rolledFlows, total)
	}

	// The Go entry point the web view uses gives the same graph, and outside tools read it: the GEXF
	// passes the GEXF 1.3 grammar, networkx reads it and the node-link JSON with the same hosts, pairs,
	// weights and counts.
	cl, err := run.ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, run.ks)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, note, err := LoadGraph(context.Background(), store.NewReader(s), GraphOptions{From: base, To: base.Add(3 * time.Hour), Window: time.Minute})
	if err != nil || g.Source != SourceRollups || note != "" || len(g.Edges) != len(rolled.Links) {
		t.Fatalf("LoadGraph: %s with %d edges, %q, %v", g.Source, len(g.Edges), note, err)
	}
	checkWithOutsideTools(t, g)
	static, _, err := LoadGraph(context.Background(), store.NewReader(s), GraphOptions{From: base, To: base.Add(3 * time.Hour), Source: SourceFlows})
	if err != nil || static.Source != SourceFlows || len(static.Edges) != len(flows.Links) {
		t.Fatalf("LoadGraph from flows: %s with %d edges, %v", static.Source, len(static.Edges), err)
	}
	checkWithOutsideTools(t, static)

	// A short range reads the flows, and says so.
	short, stderr := run.graph(t, "--from", base.Format(time.RFC3339), "--to", base.Add(10*time.Minute).Format(time.RFC3339))
	if short.Graph["source"] != SourceFlows || !strings.Contains(stderr, "shorter than") || len(short.Links) == 0 {
		t.Errorf("a 10 min range: built from %q with %d pairs (%s)", short.Graph["source"], len(short.Links), stderr)
	}
	// A window the rollups cannot make: the flows, with the reason.
	odd, stderr := run.graph(t, "--from", from, "--to", to, "--window", "90s")
	if odd.Graph["source"] != SourceFlows || !strings.Contains(stderr, "multiple") {
		t.Errorf("--window 90s: built from %q (%s)", odd.Graph["source"], stderr)
	}
}
