package processcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/bpffilter"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
	"capfleet.dev/capfleet/query"
)

func TestMain(m *testing.M) {
	testenv.RunChild(NewCommand) // a child that startChild started: `capfleet process` with its arguments
	os.Exit(m.Run())
}

func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// connArgs are the connection flags for the services the hack scripts run.
func connArgs(k kafkaconn.Config, c cassconn.Config) []string {
	args := []string{"--kafka-brokers", strings.Join(k.Brokers, ","), "--cassandra-hosts", strings.Join(c.Hosts, ","),
		"--cassandra-port", strconv.Itoa(c.Port)}
	if c.SecretDir != "" {
		args = append(args, "--cassandra-secret-dir", c.SecretDir)
	}
	return args
}

// runQuery runs `capfleet query ARGS` in-process and returns its standard output.
func runQuery(t *testing.T, args ...string) string {
	t.Helper()
	cmd := query.NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("query %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// runQueryStderr runs `capfleet query ARGS` in-process and returns its standard error.
func runQueryStderr(t *testing.T, args ...string) string {
	t.Helper()
	cmd := query.NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("query %v: %v\n%s", args, err, errOut.String())
	}
	return errOut.String()
}

// uniqueTuples are the TCP and UDP flows whose 5-tuple no other flow has, so that a BPF filter on it
// selects exactly their packets; those with the most packets first.
func uniqueTuples(flows []store.Flow) []store.Flow {
	key := func(f store.Flow) string {
		a, b := netip.AddrPortFrom(f.OrigAddr, f.OrigPort).String(), netip.AddrPortFrom(f.RespAddr, f.RespPort).String()
		if a > b {
			a, b = b, a
		}
		return fmt.Sprintf("%d %s %s", f.Proto, a, b)
	}
	n := map[string]int{}
	for _, f := range flows {
		n[key(f)]++
	}
	var out []store.Flow
	for _, f := range flows {
		if n[key(f)] == 1 && (f.Proto == 6 || f.Proto == 17) && f.OrigAddr.Is4() {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OrigPkts+out[i].RespPkts > out[j].OrigPkts+out[j].RespPkts })
	return out
}

func queryFlows(t *testing.T, conn []string, ks string, extra ...string) []store.Flow {
	t.Helper()
	out := runQuery(t, append(append([]string{"flows", "--keyspace", ks, "-o", "json"}, conn[2:]...), extra...)...)
	var flows []store.Flow
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var j store.FlowJSON
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("query flows output: %v\n%s", err, out)
		}
		flows = append(flows, fromJSON(t, j))
	}
	return flows
}

func fromJSON(t *testing.T, j store.FlowJSON) store.Flow {
	f := store.Flow{UID: j.UID, CommunityID: j.CommunityID, Sensor: j.Sensor, Start: time.Unix(0, j.StartNS).UTC(), End: time.Unix(0, j.EndNS).UTC(),
		VLAN: j.VLAN, OrigPort: j.OrigP, RespPort: j.RespP, OrigPkts: j.OrigPkts, RespPkts: j.RespPkts, OrigBytes: j.OrigBytes,
		RespBytes: j.RespBytes, OrigIPBytes: j.OrigIPBytes, RespIPBytes: j.RespIPBytes, TCPFlags: j.TCPFlags, History: j.History,
		State: j.ConnState, Closed: j.Closed}
	var err error
	if f.OrigAddr, err = parseAddr(j.OrigH); err != nil {
		t.Fatal(err)
	}
	if f.RespAddr, err = parseAddr(j.RespH); err != nil {
		t.Fatal(err)
	}
	switch j.Proto {
	case "tcp":
		f.Proto = 6
	case "udp":
		f.Proto = 17
	case "sctp":
		f.Proto = 132
	case "icmp":
		f.Proto = 1
		if f.OrigAddr.Is6() {
			f.Proto = 58
		}
	default:
		n, err := strconv.Atoi(j.Proto)
		if err != nil {
			t.Fatalf("proto %q", j.Proto)
		}
		f.Proto = uint8(n)
	}
	return f
}

// tcpdumpHex is `tcpdump -r FILE -nn -x`: the oracle for "the same packets, byte for byte".
func tcpdumpHex(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-nn", "-x").Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v", path, err)
	}
	return string(out)
}

// tcpdumpText is `tcpdump -r FILE -nn`, a line per packet.
func tcpdumpText(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-nn").Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v", path, err)
	}
	return string(out)
}

func epoch(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// A real capture goes through the real Kafka and the real Cassandra; `capfleet query flows` returns the
// flows the same aggregation finds offline, and `capfleet query packets -w` gives back a pcap that
// tcpdump prints exactly as it prints the input.
func TestCaptureThroughKafkaAndCassandraAnswersQueries(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is needed as the oracle: run hack/deps.sh")
	}
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	input := pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap")
	frames := pipelinetest.ReadCapture(t, input)
	pipelinetest.EthernetOnly(t, frames)
	topic := kafkatest.NewTopic(t, kcfg, 3)
	group := unique("e2e-")
	pipelinetest.Produce(t, kcfg, topic, frames)

	flowsTopic := kafkatest.NewTopic(t, kcfg, 1)
	conn := connArgs(kcfg, ccfg)
	metricsAddr := testenv.FreeAddr(t)
	// A short idle timeout: once the capture is consumed, every flow closes within seconds, so the
	// closing writes and the flows topic are exercised too.
	args := append([]string{"--topic", topic, "--group", group, "--sensor", "lab", "--store-packets", "--store-flows",
		"--keyspace", ks, "--metrics-addr", metricsAddr, "--health-addr", metricsAddr, "--commit-interval", "300ms",
		"--flow-idle-timeout", "2s", "--flows-topic", flowsTopic}, conn...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := NewCommand()
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	first, last := pipelinetest.TimeSpan(frames)
	fcfg := pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "lab")
	r := connectReader(t, ccfg, ks)
	pipelinetest.Eventually(t, 3*time.Minute, "all flows stored and closed", func() (bool, string) {
		got, err := r.FlowsBetween(ctx, first, last)
		if err != nil {
			return false, err.Error()
		}
		if d := pipelinetest.DiffFlows(got, want); d != "" {
			return false, d
		}
		for _, f := range got {
			if !f.Closed {
				return false, "flow " + f.UID + " still open"
			}
		}
		return true, ""
	})
	published := consumeFlows(t, kcfg, flowsTopic, len(want))
	for _, f := range want {
		j, ok := published[f.UID]
		if !ok {
			t.Fatalf("flow %s not published to %s", f.UID, flowsTopic)
		}
		if j.OrigPkts != f.OrigPkts || j.RespBytes != f.RespBytes || !j.Closed || j.CommunityID != f.CommunityID {
			t.Fatalf("published %+v, stored %+v", j, f)
		}
	}
	metrics := httpGet(t, "http://"+metricsAddr+"/metrics")
	for _, line := range []string{
		fmt.Sprintf("capfleet_process_records_total %d", len(frames)),
		fmt.Sprintf("capfleet_process_packets_written_total %d", len(frames)),
		fmt.Sprintf("capfleet_process_flows_written_total %d", len(want)),
		fmt.Sprintf("capfleet_process_flows_published_total %d", len(want)),
		"capfleet_process_flows_active 0",
		"capfleet_process_commit_lag 0",
		`capfleet_process_decode_errors_total{reason="unsupported_link"} 0`,
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if got := httpGet(t, "http://"+metricsAddr+"/readyz"); got != "ok\n" {
		t.Errorf("/readyz: %q", got)
	}
	pipelinetest.Eventually(t, time.Minute, "all offsets committed", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		return err == nil && c == end, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})

	// query flows, over the whole capture and for one address.
	got := queryFlows(t, conn, ks, "--from", epoch(first), "--to", epoch(last))
	if d := pipelinetest.DiffFlows(got, want); d != "" {
		t.Fatalf("query flows differs from the offline aggregation:\n%s", d)
	}
	// An address in some flows but not all, so that the per-IP read must select.
	count := map[netip.Addr]int{}
	for _, f := range want {
		count[f.OrigAddr]++
		count[f.RespAddr]++
	}
	ip := want[0].OrigAddr
	for a, n := range count {
		if n >= 2 && n < len(want) && (count[ip] < 2 || n < count[ip] || (n == count[ip] && a.Less(ip))) {
			ip = a
		}
	}
	var wantIP []store.Flow
	for _, f := range want {
		if f.OrigAddr == ip || f.RespAddr == ip {
			wantIP = append(wantIP, f)
		}
	}
	gotIP := queryFlows(t, conn, ks, "--ip", ip.String(), "--from", epoch(first), "--to", epoch(last))
	if d := pipelinetest.DiffFlows(gotIP, wantIP); d != "" {
		t.Fatalf("query flows --ip %s:\n%s", ip, d)
	}
	table := runQuery(t, append([]string{"flows", "--keyspace", ks, "--ip", ip.String(), "--from", epoch(first), "--to", epoch(last)}, conn[2:]...)...)
	if lines := strings.Count(table, "\n"); lines != len(wantIP)+1 {
		t.Errorf("table has %d lines, want a header and %d flows:\n%s", lines, len(wantIP), table)
	}
	t.Logf("%d flows; %d of %s; table starts:\n%s", len(want), len(wantIP), ip, strings.Join(strings.SplitN(table, "\n", 4)[:3], "\n"))

	// query packets: the pcap it writes prints like the input.
	out := filepath.Join(t.TempDir(), "out.pcap")
	runQuery(t, append([]string{"packets", "--keyspace", ks, "--sensor", "lab", "--from", epoch(first), "--to", epoch(last), "-w", out}, conn[2:]...)...)
	if a, b := tcpdumpHex(t, input), tcpdumpHex(t, out); a != b {
		t.Fatalf("tcpdump -r -nn -x differs between the input (%d bytes of output) and the export (%d)", len(a), len(b))
	}
	// The same with a BPF filter at export: what tcpdump's filter keeps of the input.
	const filter = "udp and port 30303"
	runQuery(t, append([]string{"packets", "--keyspace", ks, "--sensor", "lab", "--from", epoch(first), "--to", epoch(last),
		"--filter", filter, "-w", out}, conn[2:]...)...)
	if want, err := exec.Command("tcpdump", "-r", input, "-nn", "-x", filter).Output(); err != nil || tcpdumpHex(t, out) != string(want) {
		t.Fatalf("query packets --filter %q differs from tcpdump's (%v)", filter, err)
	}
	// --ip: what tcpdump's "host" keeps (the capture has no tunnels, so its one IP header is all there is).
	runQuery(t, append([]string{"packets", "--keyspace", ks, "--sensor", "lab", "--from", epoch(first), "--to", epoch(last),
		"--ip", ip.String(), "-w", out}, conn[2:]...)...)
	if want, err := exec.Command("tcpdump", "-r", input, "-nn", "-x", "host "+ip.String()).Output(); err != nil || tcpdumpHex(t, out) != string(want) {
		t.Fatalf("query packets --ip %s differs from tcpdump's host filter (%v)", ip, err)
	}
	// --flow, by uid and by Community ID: exactly the packets of that flow, as tcpdump's filter on its
	// 5-tuple keeps them (for flows whose 5-tuple occurs once in the capture).
	checked := 0
	for _, f := range uniqueTuples(want) {
		if checked == 3 {
			break
		}
		id := f.UID
		if checked == 1 {
			id = f.CommunityID
		}
		stats := runQueryStderr(t, append([]string{"packets", "--keyspace", ks, "--sensor", "lab", "--from", epoch(first), "--to", epoch(last),
			"--flow", id, "--stats", "-w", out}, conn[2:]...)...)
		oracle := fmt.Sprintf("%s and host %s and host %s and port %d and port %d", flow.ProtoName(f.Proto), f.OrigAddr, f.RespAddr, f.OrigPort, f.RespPort)
		wantHex, err := exec.Command("tcpdump", "-r", input, "-nn", "-x", oracle).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := tcpdumpHex(t, out); got != string(wantHex) || strings.Count(got, "\n") == 0 {
			t.Fatalf("query packets --flow %s (%s) differs from tcpdump %q", id, f.UID, oracle)
		}
		if n := strings.Count(tcpdumpText(t, out), "\n"); uint64(n) != f.OrigPkts+f.RespPkts {
			t.Fatalf("--flow %s: %d packets, the flow counts %d", id, n, f.OrigPkts+f.RespPkts)
		}
		t.Logf("--flow %s: %s", id, strings.TrimSpace(stats))
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d flows with a unique 5-tuple to check --flow with", checked)
	}
	var wantUDP []store.Flow
	for _, f := range want {
		if f.Proto == 17 && (f.OrigPort == 30303 || f.RespPort == 30303) {
			wantUDP = append(wantUDP, f)
		}
	}
	gotUDP := queryFlows(t, conn, ks, "--proto", "udp", "--port", "30303", "--from", epoch(first), "--to", epoch(last))
	if d := pipelinetest.DiffFlows(gotUDP, wantUDP); d != "" || len(wantUDP) == 0 || len(wantUDP) == len(want) {
		t.Fatalf("query flows --proto udp --port 30303 (%d of %d flows):\n%s", len(wantUDP), len(want), d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("process: %v", err)
	}
}

// consumeFlows reads the flows topic until it holds n distinct flows (a restart may publish one twice).
func consumeFlows(t *testing.T, cfg kafkaconn.Config, topic string, n int) map[string]store.FlowJSON {
	t.Helper()
	cl, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := map[string]store.FlowJSON{}
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("flows topic %s holds %d distinct flows, want %d", topic, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var j store.FlowJSON
			if err := json.Unmarshal(r.Value, &j); err != nil {
				t.Fatalf("flow record %q: %v", r.Value, err)
			}
			if string(r.Key) != j.UID {
				t.Fatalf("flow record keyed %q holds uid %s", r.Key, j.UID)
			}
			out[j.UID] = j
		})
	}
	return out
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func connectReader(t *testing.T, ccfg cassconn.Config, ks string) *store.Reader {
	t.Helper()
	cl, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return store.NewReader(s)
}

// The process is killed with SIGKILL in the middle of the stream, after some commits and with flows
// open, and started again: Cassandra ends up with exactly the expected packets and flows, none twice
// and no flow split at the kill.
func TestKilledMidStreamAndRestartedStoresEverythingOnce(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	// The capture 48 times, 40 minutes apart: long enough a stream to be killed in the middle of, and
	// spread over several hour buckets.
	base := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	var frames []pipelinetest.Frame
	for rep := range 48 {
		for _, f := range base {
			f.Meta.Timestamp = f.Meta.Timestamp.Add(time.Duration(rep) * 40 * time.Minute)
			frames = append(frames, f)
		}
	}
	topic := kafkatest.NewTopic(t, kcfg, 3)
	group := unique("kill-")
	pipelinetest.Produce(t, kcfg, topic, frames)
	ctx := context.Background()

	metrics := testenv.FreeAddr(t)
	args := append([]string{"--topic", topic, "--group", group, "--sensor", "lab", "--store-packets", "--store-flows",
		"--keyspace", ks, "--metrics-addr", metrics, "--health-addr", "", "--commit-interval", "100ms",
		"--max-poll-records", "20"}, connArgs(kcfg, ccfg)...)
	killAfterFirstCommit(t, ctx, args, metrics, kcfg, group, topic)

	child, log := startChild(t, args)
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		if err := child.Wait(); err != nil {
			t.Errorf("restarted process: %v\n%s", err, tail(log.String(), 20))
		}
	}()
	pipelinetest.Eventually(t, 3*time.Minute, "all offsets committed after the restart", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		return err == nil && c == end, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})
	if !strings.Contains(log.String(), "resumed open flows from checkpoint") {
		t.Errorf("the restarted process resumed no checkpoint:\n%s", tail(log.String(), 20))
	}

	first, last := pipelinetest.TimeSpan(frames)
	fcfg := pipeline.FlowConfig{IdleTimeout: 60 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "lab")
	r := connectReader(t, ccfg, ks)
	pipelinetest.Eventually(t, time.Minute, "exactly the expected flows", func() (bool, string) {
		got, err := r.FlowsBetween(ctx, first, last)
		if err != nil {
			return false, err.Error()
		}
		d := pipelinetest.DiffFlows(got, want)
		return d == "", d
	})
	// Each stored packet once: as many rows as frames, and the same bytes in the same order.
	i := 0
	err := r.Packets(ctx, "lab", first, last, func(p store.Packet) error {
		if i < len(frames) && !bytes.Equal(p.Data, frames[i].Data) {
			return fmt.Errorf("packet %d differs from frame %d", i, i)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(frames) {
		t.Fatalf("%d packets stored, want %d", i, len(frames))
	}
	checkRollupsExact(t, conn(kcfg, ccfg, ks), frames)
}

func conn(k kafkaconn.Config, c cassconn.Config, ks string) []string {
	return append([]string{"--keyspace", ks}, connArgs(k, c)[2:]...)
}

// checkRollupsExact checks the traffic counters and edge rollups after a kill and a restart: query
// traffic gives each second's packets and wire bytes of the input, none counted twice or lost, and the
// graph from the edge rollups has the pairs, packets, bytes and flows of the graph from the flows
// (which the caller checked against the offline aggregation).
func checkRollupsExact(t *testing.T, conn []string, frames []pipelinetest.Frame) {
	t.Helper()
	type pb struct{ Packets, Bytes uint64 }
	want := map[int64]pb{}
	for _, f := range frames {
		s := want[f.Meta.Timestamp.Unix()]
		s.Packets++
		s.Bytes += uint64(f.Meta.OrigLen)
		want[f.Meta.Timestamp.Unix()] = s
	}
	first, last := pipelinetest.TimeSpan(frames)
	span := []string{"--from", epoch(first.Truncate(time.Second)), "--to", epoch(last)}
	pipelinetest.Eventually(t, time.Minute, "traffic per second as in the input", func() (bool, string) {
		out := runQuery(t, append(append([]string{"traffic", "--sensor", "lab", "--step", "1s", "-o", "json"}, span...), conn...)...)
		got := map[int64]pb{}
		dec := json.NewDecoder(strings.NewReader(out))
		for dec.More() {
			var p query.TrafficPoint
			if err := dec.Decode(&p); err != nil {
				return false, err.Error()
			}
			got[p.Start.Unix()] = pb{p.Packets, p.Bytes}
		}
		if len(got) != len(want) {
			return false, fmt.Sprintf("%d seconds with packets, the input has %d", len(got), len(want))
		}
		for sec, w := range want {
			if got[sec] != w {
				return false, fmt.Sprintf("second %d: %+v, the input %+v", sec, got[sec], w)
			}
		}
		return true, ""
	})
	span = []string{"--from", epoch(first), "--to", epoch(last.Add(time.Minute))}
	pipelinetest.Eventually(t, time.Minute, "the graph from the rollups equals the graph from the flows", func() (bool, string) {
		rolled := runQuery(t, append(append([]string{"graph", "-o", "json", "--source", "rollups"}, span...), conn...)...)
		flows := runQuery(t, append(append([]string{"graph", "-o", "json", "--source", "flows"}, span...), conn...)...)
		type links struct {
			Links []struct {
				Source, Target          string
				Flows, Packets, IPBytes uint64 `json:"-"`
				F                       uint64 `json:"flows"`
				P                       uint64 `json:"packets"`
				B                       uint64 `json:"ip_bytes"`
			}
		}
		var r, f links
		if err := json.Unmarshal([]byte(rolled), &r); err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal([]byte(flows), &f); err != nil {
			return false, err.Error()
		}
		if len(r.Links) != len(f.Links) || len(f.Links) == 0 {
			return false, fmt.Sprintf("%d pairs from the rollups, %d from the flows", len(r.Links), len(f.Links))
		}
		for i := range r.Links {
			if r.Links[i] != f.Links[i] {
				return false, fmt.Sprintf("rollups %+v, flows %+v", r.Links[i], f.Links[i])
			}
		}
		return true, ""
	})
}

// A consumer that committed everything and died before writing its open flows' totals (they are
// written every --flow-update-interval) leaves them only in its checkpoints. The next consumer of the
// group gets no record at all, yet it loads those checkpoints when the partitions are assigned and
// writes the flows: exactly the totals the offline aggregation finds.
func TestNextOwnerWritesTheOpenFlowsOfAQuietPartition(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	topic := kafkatest.NewTopic(t, kcfg, 3)
	group := unique("quiet-")
	pipelinetest.Produce(t, kcfg, topic, frames)
	ctx := context.Background()

	// Flows stay open (an hour of idle time) and their totals are due only after an hour.
	args := append([]string{"--topic", topic, "--group", group, "--sensor", "lab", "--store-flows",
		"--flow-idle-timeout", "1h", "--flow-update-interval", "1h", "--commit-interval", "100ms",
		"--keyspace", ks, "--metrics-addr", "", "--health-addr", ""}, connArgs(kcfg, ccfg)...)
	child, log := startChild(t, args)
	pipelinetest.Eventually(t, 3*time.Minute, "every offset committed", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		return err == nil && c == end, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})
	first, last := pipelinetest.TimeSpan(frames)
	fcfg := pipeline.FlowConfig{IdleTimeout: time.Hour, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "lab")
	r := connectReader(t, ccfg, ks)
	got, err := r.FlowsBetween(ctx, first, last)
	if err != nil {
		t.Fatal(err)
	}
	// Without this the test below would prove nothing.
	if pipelinetest.DiffFlows(got, want) == "" {
		t.Fatalf("the first consumer wrote every open flow (%d) before it was killed", len(got))
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	t.Logf("killed with %d of %d flows stored; its log:\n%s", len(got), len(want), tail(log.String(), 5))

	child, log = startChild(t, args)
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		if err := child.Wait(); err != nil {
			t.Errorf("second process: %v\n%s", err, tail(log.String(), 20))
		}
	}()
	pipelinetest.Eventually(t, time.Minute, "the open flows written by the next owner", func() (bool, string) {
		got, err := r.FlowsBetween(ctx, first, last)
		if err != nil {
			return false, err.Error()
		}
		d := pipelinetest.DiffFlows(got, want)
		return d == "", d
	})
	if !strings.Contains(log.String(), "resumed open flows from checkpoint") {
		t.Errorf("the second process resumed no checkpoint:\n%s", tail(log.String(), 20))
	}
}

// The real Cassandra process is killed with SIGKILL in the middle of the stream and started again on
// its data: the pipeline retries meanwhile, commits nothing it could not store, and once the node is
// back Cassandra holds exactly the expected packets and flows, none twice.
func TestCassandraKilledMidStreamAndRestarted(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	node := cassandratest.StartPrivate(t)
	ccfg := node.Config()
	ks := cassandratest.NewKeyspace(t, ccfg)
	base := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	var frames []pipelinetest.Frame
	for rep := range 24 {
		for _, f := range base {
			f.Meta.Timestamp = f.Meta.Timestamp.Add(time.Duration(rep) * 40 * time.Minute)
			frames = append(frames, f)
		}
	}
	topic := kafkatest.NewTopic(t, kcfg, 3)
	group := unique("cass-kill-")
	pipelinetest.Produce(t, kcfg, topic, frames)
	ctx := context.Background()
	metrics := testenv.FreeAddr(t)
	args := append([]string{"--topic", topic, "--group", group, "--sensor", "lab", "--store-packets", "--store-flows",
		"--keyspace", ks, "--metrics-addr", metrics, "--health-addr", "", "--commit-interval", "100ms",
		"--max-poll-records", "20"}, connArgs(kcfg, ccfg)...)
	child, log := startChild(t, args)
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		if err := child.Wait(); err != nil {
			t.Errorf("process: %v\n%s", err, tail(log.String(), 20))
		}
	}()
	for deadline := time.Now().Add(3 * time.Minute); metricValue(httpGetOrEmpty("http://"+metrics+"/metrics"), "capfleet_process_commits_total") < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no commit within 3 minutes:\n%s", tail(log.String(), 20))
		}
	}
	argv := node.Crash(t)
	atCrash, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if atCrash >= end {
		t.Fatalf("the process stored everything (%d of %d committed) before the node could be killed", atCrash, end)
	}
	// While the node is away the process retries and commits nothing more (a commit for writes the
	// node acknowledged just before it died may still land in the first second).
	time.Sleep(time.Second)
	c1, _, err1 := pipelinetest.Committed(ctx, kcfg, group, topic)
	time.Sleep(3 * time.Second)
	c2, _, err2 := pipelinetest.Committed(ctx, kcfg, group, topic)
	if err1 != nil || err2 != nil || c2 != c1 {
		t.Fatalf("commits went on with the node down: %d, then %d (%v %v)", c1, c2, err1, err2)
	}
	if m := httpGetOrEmpty("http://" + metrics + "/metrics"); metricValue(m, "capfleet_process_retries_total") == 0 {
		t.Errorf("no write retried while the node was down")
	}
	node.Restart(t, argv)
	t.Logf("killed Cassandra with %d of %d records committed; restarted it on its data", atCrash, end)
	pipelinetest.Eventually(t, 3*time.Minute, "all offsets committed after the restart", func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		return err == nil && c == end, fmt.Sprintf("committed %d of %d (%v)", c, end, err)
	})

	first, last := pipelinetest.TimeSpan(frames)
	fcfg := pipeline.FlowConfig{IdleTimeout: 60 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "lab")
	r := connectReader(t, ccfg, ks)
	pipelinetest.Eventually(t, time.Minute, "exactly the expected flows", func() (bool, string) {
		got, err := r.FlowsBetween(ctx, first, last)
		if err != nil {
			return false, err.Error()
		}
		d := pipelinetest.DiffFlows(got, want)
		return d == "", d
	})
	i := 0
	err = r.Packets(ctx, "lab", first, last, func(p store.Packet) error {
		if i < len(frames) && !bytes.Equal(p.Data, frames[i].Data) {
			return fmt.Errorf("packet %d differs from frame %d", i, i)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(frames) {
		t.Fatalf("%d packets stored, want %d", i, len(frames))
	}
}

// startChild runs `capfleet process args` as a child process that a test can kill with SIGKILL.
// killAfterFirstCommit starts `capfleet process` with args and kills it (SIGKILL) right after its first
// commit, watched from its own metrics every few milliseconds (a fast process drains the topic within
// a second or two), and fails the test when it had committed everything by then.
func killAfterFirstCommit(t *testing.T, ctx context.Context, args []string, metrics string, kcfg kafkaconn.Config, group, topic string) {
	t.Helper()
	child, log := startChild(t, args)
	var atKill int64
	deadline := time.Now().Add(3 * time.Minute)
	for atKill = 0; atKill < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("no commit within 3 minutes:\n%s", tail(log.String(), 20))
		}
		atKill = int64(metricValue(httpGetOrEmpty("http://"+metrics+"/metrics"), "capfleet_process_commits_total"))
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if c >= end {
		t.Fatalf("the process finished (%d of %d committed) before it could be killed mid-stream", c, end)
	}
	t.Logf("killed after %d commits, with %d of %d records committed; its log:\n%s", atKill, c, end, tail(log.String(), 10))
}

func startChild(t *testing.T, args []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	return testenv.StartChild(t, args)
}

// Two replicas split the partitions of one topic, a third joins, one is killed with SIGKILL mid-stream:
// after the rebalances, what is stored is exactly the input, each packet once and byte for byte, and the
// flows are exactly those the offline aggregation finds.
func TestReplicasSplitPartitionsAndSurviveAKill(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	base := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	var frames []pipelinetest.Frame
	for rep := range 8 {
		for _, f := range base {
			f.Meta.Timestamp = f.Meta.Timestamp.Add(time.Duration(rep) * 40 * time.Minute)
			frames = append(frames, f)
		}
	}
	topic := kafkatest.NewTopic(t, kcfg, 6)
	group := unique("scale-")
	// The stream comes in three parts, each sent only after the event before it, so that a replica joins
	// and another dies while records are still to come however fast the replicas are.
	// The waits between the parts are wall time: with the default --idle-grace a caught-up partition's
	// clock follows the wall during them and ends the flows at a part's edge (a FIN or unanswered SYN
	// ends its flow 5 s later) that the offline aggregation, with no pauses, keeps open.
	third := len(frames) / 3
	pipelinetest.Produce(t, kcfg, topic, frames[:third])
	ctx := context.Background()
	args := func(metrics string) []string {
		return append([]string{"--topic", topic, "--group", group, "--sensor", "lab", "--store-packets", "--store-flows",
			"--keyspace", ks, "--metrics-addr", metrics, "--health-addr", "", "--commit-interval", "100ms",
			"--max-poll-records", "10", "--idle-grace", "1h"}, connArgs(kcfg, ccfg)...)
	}
	committed := func() int64 {
		c, _, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		if err != nil {
			return 0
		}
		return c
	}
	total := int64(len(frames))
	a, _ := startChild(t, args(testenv.FreeAddr(t)))
	b, logB := startChild(t, args(testenv.FreeAddr(t)))
	pipelinetest.Eventually(t, 3*time.Minute, "two replicas commit records of the first part", func() (bool, string) {
		c := committed()
		return c > 0, fmt.Sprintf("committed %d of %d", c, third)
	})
	metricsC := testenv.FreeAddr(t)
	c, logC := startChild(t, args(metricsC))
	adm, err := kcfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	pipelinetest.Eventually(t, 3*time.Minute, "the group rebalanced to three members", func() (bool, string) {
		groups, err := kadm.NewClient(adm).DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		g := groups[group]
		return g.State == "Stable" && len(g.Members) == 3, fmt.Sprintf("%s with %d members", g.State, len(g.Members))
	})
	pipelinetest.Produce(t, kcfg, topic, frames[third:2*third])
	pipelinetest.Eventually(t, 3*time.Minute, "the third replica consumes", func() (bool, string) {
		n := metricValue(httpGetOrEmpty("http://"+metricsC+"/metrics"), "capfleet_process_records_total")
		return n > 0, fmt.Sprintf("third replica consumed %.0f records", n)
	})
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	atKill := committed()
	pipelinetest.Produce(t, kcfg, topic, frames[2*third:])
	pipelinetest.Eventually(t, 4*time.Minute, "all offsets committed by the two left", func() (bool, string) {
		n := committed()
		return n == total, fmt.Sprintf("committed %d of %d", n, total)
	})
	for _, ch := range []*exec.Cmd{b, c} {
		ch.Process.Signal(syscall.SIGTERM)
		if err := ch.Wait(); err != nil {
			t.Errorf("replica: %v\n%s\n%s", err, tail(logB.String(), 10), tail(logC.String(), 10))
		}
	}
	t.Logf("killed one of three with %d of %d records committed", atKill, total)

	first, last := pipelinetest.TimeSpan(frames)
	fcfg := pipeline.FlowConfig{IdleTimeout: 60 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "lab")
	r := connectReader(t, ccfg, ks)
	got, err := r.FlowsBetween(ctx, first, last)
	if err != nil {
		t.Fatal(err)
	}
	if d := pipelinetest.DiffFlows(got, want); d != "" {
		t.Fatalf("flows differ from the offline aggregation:\n%s", d)
	}
	// Each packet once, byte for byte: every frame's bytes are met exactly as often as they occur in the
	// input (the order across partitions is by time, and equal times may interleave).
	remaining := map[string]int{}
	for _, f := range frames {
		remaining[f.Meta.Timestamp.String()+string(f.Data)]++
	}
	n := 0
	st, err := r.Scan(ctx, store.PacketQuery{Sensor: "lab", From: first, To: last}, func(p store.Packet) error {
		k := p.Timestamp.String() + string(p.Data)
		if remaining[k] == 0 {
			return fmt.Errorf("packet at %s (partition %d offset %d) stored once too often or never sent", p.Timestamp, p.Partition, p.Offset)
		}
		remaining[k]--
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(frames) {
		t.Fatalf("%d packets stored, want %d", n, len(frames))
	}
	t.Logf("%d packets in %d blocks; %d records met in two blocks and returned once", n, st.BlocksRead, st.Duplicates)
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tcpdumpCount is how many packets of path tcpdump's own filter keeps: the oracle for --filter.
func tcpdumpCount(t *testing.T, path, filter string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-nn", filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s %s: %v", path, filter, err)
	}
	return strings.Count(string(out), "\n")
}

// --filter drops what tcpdump's filter drops: the stored packets are exactly those tcpdump keeps, and
// the rest is counted as filtered on /metrics.
func TestFilterStoresWhatTcpdumpKeeps(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is needed as the oracle: run hack/deps.sh")
	}
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	input := pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap")
	frames := pipelinetest.ReadCapture(t, input)
	const filter = "udp and port 30303"
	keep := tcpdumpCount(t, input, filter)
	if keep == 0 || keep == len(frames) {
		t.Fatalf("filter %q keeps %d of %d packets: pick one that selects", filter, keep, len(frames))
	}
	// Packets stored, flows only published (checkpointed in Cassandra all the same).
	flowsTopic := kafkatest.NewTopic(t, kcfg, 1)
	run := runFiltered(t, kcfg, ccfg, ks, frames, keep, "f", "--filter", filter, "--flows-topic", flowsTopic, "--flow-idle-timeout", "2s")
	out, r, ctx, first, last := run.export, run.reader, run.ctx, run.first, run.last
	want, err := exec.Command("tcpdump", "-r", input, "-nn", "-x", filter).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := tcpdumpHex(t, out); got != string(want) {
		t.Fatal("the stored packets differ from those tcpdump's filter keeps")
	}
	set, err := bpffilter.NewSet(filter)
	if err != nil {
		t.Fatal(err)
	}
	var kept []pipelinetest.Frame
	for _, f := range frames {
		if set.Match(f.Data, uint32(f.Meta.LinkType), len(f.Data)) {
			kept = append(kept, f)
		}
	}
	wantFlows := pipelinetest.ExpectedFlows(t, kept, pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}, "f")
	published := consumeFlows(t, kcfg, flowsTopic, len(wantFlows))
	for _, f := range wantFlows {
		if j, ok := published[f.UID]; !ok || j.OrigPkts != f.OrigPkts || j.RespPkts != f.RespPkts {
			t.Fatalf("flow %s published as %+v, want %+v", f.UID, j, f)
		}
	}
	if stored, err := r.FlowsBetween(ctx, first, last); err != nil || len(stored) != 0 {
		t.Fatalf("flows stored without --store-flows: %d (%v)", len(stored), err)
	}
	run.stop(t)
}

// filtered is `capfleet process` run in-process with a filter on frames, once it consumed them all, counted
// the ones it dropped and stored the keep others, which it exported with query packets.
type filtered struct {
	reader      *store.Reader
	ctx         context.Context
	first, last time.Time
	export      string // pcap written by query packets
	metricsAddr string
	stop        func(t *testing.T)
}

func runFiltered(t *testing.T, kcfg kafkaconn.Config, ccfg cassconn.Config, ks string, frames []pipelinetest.Frame, keep int, sensor string, flags ...string) filtered {
	t.Helper()
	topic := kafkatest.NewTopic(t, kcfg, 2)
	pipelinetest.Produce(t, kcfg, topic, frames)
	metricsAddr := testenv.FreeAddr(t)
	args := append(append([]string{"--topic", topic, "--group", unique(sensor + "-"), "--sensor", sensor, "--store-packets",
		"--keyspace", ks, "--metrics-addr", metricsAddr, "--health-addr", ""}, flags...), connArgs(kcfg, ccfg)...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := NewCommand()
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	pipelinetest.Eventually(t, 3*time.Minute, "every record consumed", func() (bool, string) {
		m := httpGetOrEmpty("http://" + metricsAddr + "/metrics")
		return strings.Contains(m, fmt.Sprintf("capfleet_process_records_total %d\n", len(frames))), "not yet"
	})
	m := httpGet(t, "http://"+metricsAddr+"/metrics")
	if want := fmt.Sprintf("capfleet_process_filtered_total %d\n", len(frames)-keep); !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %q", want)
	}
	first, last := pipelinetest.TimeSpan(frames)
	r := connectReader(t, ccfg, ks)
	out := filepath.Join(t.TempDir(), "kept.pcap")
	pipelinetest.Eventually(t, time.Minute, "kept packets stored", func() (bool, string) {
		n := 0
		err := r.Packets(ctx, sensor, first, last, func(store.Packet) error { n++; return nil })
		return err == nil && n == keep, fmt.Sprintf("%d of %d (%v)", n, keep, err)
	})
	runQuery(t, append([]string{"packets", "--keyspace", ks, "--sensor", sensor, "--from", epoch(first), "--to", epoch(last), "-w", out}, connArgs(kcfg, ccfg)[2:]...)...)
	return filtered{reader: r, ctx: ctx, first: first, last: last, export: out, metricsAddr: metricsAddr, stop: func(t *testing.T) {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}}
}

// metricValue is the sum of the samples of a Prometheus metric in a /metrics page (0 when absent).
func metricValue(page, name string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

func httpGetOrEmpty(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// --display-filter drops what tshark -Y drops: the stored packets are exactly those tshark keeps (IP
// reassembly off, as the parity tests run it), and the rest is counted as filtered on /metrics.
func TestDisplayFilterStoresWhatTsharkKeeps(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is needed as the oracle: run hack/deps.sh")
	}
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	input := pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap")
	frames := pipelinetest.ReadCapture(t, input)
	const filter = "udp.port == 30303 && (ip.len > 200 || ip.dst == 10.0.0.0/8)"
	kept := filepath.Join(t.TempDir(), "tshark-kept.pcap")
	if out, err := exec.Command("tshark", "-n", "-r", input, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-Y", filter, "-w", kept).CombinedOutput(); err != nil {
		t.Fatalf("tshark -Y: %v: %s", err, out)
	}
	keep := len(pipelinetest.ReadCapture(t, kept))
	if keep == 0 || keep == len(frames) {
		t.Fatalf("filter %q keeps %d of %d packets: pick one that selects", filter, keep, len(frames))
	}
	run := runFiltered(t, kcfg, ccfg, ks, frames, keep, "y", "--display-filter", filter)
	out := run.export
	if got, want := tcpdumpHex(t, out), tcpdumpHex(t, kept); got != want {
		t.Fatal("the stored packets differ from those tshark -Y keeps")
	}
	// The traffic counters see every packet, and count those the filter dropped.
	pipelinetest.Eventually(t, time.Minute, "traffic counters of every packet, the dropped ones as filtered", func() (bool, string) {
		rows, err := run.reader.Traffic(run.ctx, "y", run.first.Truncate(time.Second), run.last)
		var packets, filtered uint64
		for _, r := range rows {
			packets += r.Packets
			filtered += r.Filtered
		}
		return err == nil && packets == uint64(len(frames)) && filtered == uint64(len(frames)-keep),
			fmt.Sprintf("%d packets, %d filtered; want %d and %d (%v)", packets, filtered, len(frames), len(frames)-keep, err)
	})
	run.stop(t)
}

// --flow-filter keeps flows from the sinks: what is stored and what is published are exactly the flows
// of the offline flow table for which the same condition, written out in Go, holds; the rest are
// counted as filtered flows, and the packets are all stored.
func TestFlowFilterKeepsFlowsFromTheSinks(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	const filter = `conn_state != "S0" && flow.pkts > 3`
	holds := func(f *store.Flow) bool { return f.State != "S0" && f.OrigPkts+f.RespPkts > 3 }
	all := pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}, "ff")
	var want []store.Flow
	for i := range all {
		if holds(&all[i]) {
			want = append(want, all[i])
		}
	}
	if len(want) == 0 || len(want) == len(all) {
		t.Fatalf("filter %q keeps %d of %d flows: pick one that selects", filter, len(want), len(all))
	}
	flowsTopic := kafkatest.NewTopic(t, kcfg, 1)
	run := runFiltered(t, kcfg, ccfg, ks, frames, len(frames), "ff", "--store-flows", "--flows-topic", flowsTopic,
		"--flow-idle-timeout", "2s", "--flow-filter", filter)
	defer run.stop(t)
	var stored []store.Flow
	pipelinetest.Eventually(t, time.Minute, "the kept flows stored, closed", func() (bool, string) {
		var err error
		stored, err = run.reader.FlowsBetween(run.ctx, run.first, run.last)
		return err == nil && len(stored) == len(want) && !slices.ContainsFunc(stored, func(f store.Flow) bool { return !f.Closed }),
			fmt.Sprintf("%d stored, want %d (%v)", len(stored), len(want), err)
	})
	pipelinetest.SortFlows(stored)
	pipelinetest.SortFlows(want)
	if d := pipelinetest.DiffFlows(stored, want); d != "" {
		t.Fatalf("stored flows differ from the offline ones the filter keeps:\n%s", d)
	}
	published := consumeFlows(t, kcfg, flowsTopic, len(want))
	for _, f := range want {
		if j, ok := published[f.UID]; !ok || j.OrigPkts != f.OrigPkts || j.RespPkts != f.RespPkts {
			t.Fatalf("flow %s published as %+v, want %+v", f.UID, j, f)
		}
	}
	if len(published) != len(want) {
		t.Fatalf("%d flows published, want %d", len(published), len(want))
	}
	if n := metricValue(httpGet(t, "http://"+run.metricsAddr+"/metrics"), "capfleet_process_flows_filtered_total"); n < float64(len(all)-len(want)) {
		t.Fatalf("capfleet_process_flows_filtered_total %v, want at least the %d flows the filter rejects", n, len(all)-len(want))
	}
}

// A topic whose packets go back in time (captures concatenated, a looped replay) keeps each flow whole:
// the flows of the earlier capture must not end at once because the clock has seen the later one.
func TestACaptureGoingBackInTimeStoresTheFlowsPcapFlowsFinds(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	later := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	earlier := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/EAQ.pcap"))
	if !earlier[len(earlier)-1].Meta.Timestamp.Before(later[0].Meta.Timestamp) {
		t.Fatal("the second capture must be older than the first for this test")
	}
	frames := append(append([]pipelinetest.Frame{}, later...), earlier...)
	want := pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000}, "back")
	run := runFiltered(t, kcfg, ccfg, ks, frames, len(frames), "back", "--store-flows", "--flow-idle-timeout", "2s")
	defer run.stop(t)
	var stored []store.Flow
	pipelinetest.Eventually(t, time.Minute, "the flows of both captures stored, closed", func() (bool, string) {
		var err error
		stored, err = run.reader.FlowsBetween(run.ctx, run.first, run.last)
		return err == nil && len(stored) >= len(want) && !slices.ContainsFunc(stored, func(f store.Flow) bool { return !f.Closed }),
			fmt.Sprintf("%d stored, want %d (%v)", len(stored), len(want), err)
	})
	pipelinetest.SortFlows(stored)
	if d := pipelinetest.DiffFlows(stored, want); d != "" {
		t.Fatalf("stored flows differ from pcap flows' on the same packets:\n%s", d)
	}
}

// TestCICFeaturesReachTheFlowsTopicAndCassandra: with --flow-features cic, every flow's CICFlowMeter
// columns reach the flows topic and the flow_features table as the flow table computed them offline
// (their values are processor/flow's TestCICFlowMeterParity's business), and flows without them
// keep their records as before.
func TestCICFeaturesReachTheFlowsTopicAndCassandra(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	cfg := pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1000000, Features: flow.FeaturesCIC}
	want := pipelinetest.ExpectedFlows(t, frames, cfg, "cic")
	flowsTopic := kafkatest.NewTopic(t, kcfg, 1)
	run := runFiltered(t, kcfg, ccfg, ks, frames, len(frames), "cic", "--store-flows", "--flows-topic", flowsTopic,
		"--flow-idle-timeout", "2s", "--flow-features", "cic")
	defer run.stop(t)
	var stored map[string]*flow.CIC
	pipelinetest.Eventually(t, time.Minute, "every flow's features stored", func() (bool, string) {
		var err error
		stored, err = run.reader.FlowFeatures(run.ctx, run.first, run.last)
		return err == nil && len(stored) == len(want), fmt.Sprintf("%d stored, want %d (%v)", len(stored), len(want), err)
	})
	published := consumeFlows(t, kcfg, flowsTopic, len(want))
	for _, f := range want {
		if f.CIC == nil {
			t.Fatalf("flow %s computed offline without features", f.UID)
		}
		for where, got := range map[string]*flow.CIC{"flow_features": stored[f.UID], "flows topic": published[f.UID].CIC} {
			if got == nil {
				t.Fatalf("flow %s: no features in %s", f.UID, where)
			}
			if got.V != f.CIC.V || got.Src != f.CIC.Src || got.Dst != f.CIC.Dst || got.SrcPort != f.CIC.SrcPort ||
				got.DstPort != f.CIC.DstPort || got.Protocol != f.CIC.Protocol {
				t.Fatalf("flow %s: %s holds\n%s\nwant\n%s", f.UID, where, got.AppendCSV(nil), f.CIC.AppendCSV(nil))
			}
		}
	}
	// And back out as an analyst reads them: query flows prints the CSV that pcap flows prints of the
	// same capture.
	csv := runQuery(t, append([]string{"flows", "--keyspace", ks, "--from", epoch(run.first), "--to", epoch(run.last),
		"--features", "cic", "-o", "csv"}, connArgs(kcfg, ccfg)[2:]...)...)
	header, body, _ := strings.Cut(csv, "\n")
	if header != flow.CICHeader {
		t.Fatalf("query flows -o csv header:\n%s\nwant\n%s", header, flow.CICHeader)
	}
	gotLines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	var wantLines []string
	for _, f := range want {
		wantLines = append(wantLines, strings.TrimSuffix(string(f.CIC.AppendCSV(nil)), "\n"))
	}
	slices.Sort(gotLines)
	slices.Sort(wantLines)
	if !slices.Equal(gotLines, wantLines) {
		t.Fatalf("query flows --features cic -o csv: %d lines, want %d\nfirst: %q\nwant:  %q", len(gotLines), len(wantLines), gotLines[0], wantLines[0])
	}
}
