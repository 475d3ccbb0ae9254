package ui

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/pcapfile"
)

// get asks the UI's API as the holder of token ("" for none) and returns the status and body.
func (l *lab) get(t *testing.T, token, path string, q url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, l.url+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// dataQuery names the lab's pipeline and a capture's time range.
func (l *lab) dataQuery(name string, kv ...string) url.Values {
	c := l.captures[name]
	q := url.Values{"ns": {labNS}, "pipeline": {"lab-flows"},
		"from": {c.first.Add(-time.Second).Format(time.RFC3339Nano)}, "to": {c.last.Add(time.Second).Format(time.RFC3339Nano)}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// Every API path answers 401 without a token or with one the API server does not accept, 403 to a user
// the API server says may not see the resource (whose token is otherwise valid), and the data to a
// user allowed to get the pipeline.
func TestAPIRefusesWhomRBACRefuses(t *testing.T) {
	l := startLab(t)
	paths := map[string]url.Values{
		"/api/fleet": {}, "/api/events": {},
		"/api/graph": l.dataQuery("dns.pcap"), "/api/top": l.dataQuery("dns.pcap"), "/api/flows": l.dataQuery("dns.pcap"),
		"/api/pcap": l.dataQuery("http.pcap", "flow", l.captures["http.pcap"].flows[0].UID),
	}
	for path, q := range paths {
		for _, c := range []struct {
			who, token string
			want       int
		}{{"no token", "", 401}, {"a forged token", "not-a-token", 401}, {"the outsider", l.outside, 403}} {
			if code, body := l.get(t, c.token, path, q); code != c.want || !bytes.Contains(body, []byte(`"error"`)) {
				t.Errorf("%s as %s: %d %s, want %d with the reason", path, c.who, code, body, c.want)
			}
		}
		if path == "/api/events" {
			continue // a stream; TestFleetStream reads it
		}
		if code, body := l.get(t, l.analyst, path, q); code != 200 {
			t.Errorf("%s as the analyst: %d %s", path, code, body)
		}
	}
	// Another namespace's pipeline is refused to the analyst, whose role is lab's only.
	q := l.dataQuery("dns.pcap")
	q.Set("ns", "default")
	if code, body := l.get(t, l.analyst, "/api/graph", q); code != 403 {
		t.Errorf("a pipeline of another namespace: %d %s, want 403", code, body)
	}
}

// The fleet lists what is in the cluster with the figures of its status, and the stream sends it again
// when the status changes.
func TestFleetStream(t *testing.T) {
	l := startLab(t)
	code, body := l.get(t, l.analyst, "/api/fleet", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var f struct {
		Sensors []struct {
			Name   string
			Status struct {
				PacketsPerSecond int64
				PerNode          []struct{ Node string }
			}
		}
		Pipelines []struct {
			Name, Sensor string
			Status       struct{ ConsumerLag int64 }
		}
		Replays []struct {
			Name   string
			Status struct{ Progress string }
		}
	}
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Sensors) != 1 || f.Sensors[0].Status.PacketsPerSecond != 4321 || len(f.Sensors[0].Status.PerNode) != 2 ||
		len(f.Pipelines) != 1 || f.Pipelines[0].Status.ConsumerLag != 1234 || f.Pipelines[0].Sensor != "lab-sensor" ||
		len(f.Replays) != 1 || f.Replays[0].Status.Progress != "27%" {
		t.Fatalf("fleet %s", body)
	}

	req, _ := http.NewRequest(http.MethodGet, l.url+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+l.analyst)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	next := func() string {
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
		return ""
	}
	if e := next(); !strings.Contains(e, `"progress":"27%"`) {
		t.Fatalf("first event %s", e)
	}
	l.setReplay(t, 43, 43)
	for {
		if e := next(); strings.Contains(e, `"progress":"100%"`) {
			break
		}
	}
}

// The graph has one node per host tshark lists in the capture (-z endpoints,ip), and top talkers by
// host count the packets tshark counts per endpoint.
func TestGraphAndTopAgreeWithTshark(t *testing.T) {
	l := startLab(t)
	want := tsharkEndpoints(t, l.captures["dns.pcap"].path)
	code, body := l.get(t, l.analyst, "/api/graph", l.dataQuery("dns.pcap", "window", "1s"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var g struct {
		Nodes []struct{ ID string }
		Links []struct{ Source, Target string }
	}
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range g.Nodes {
		got = append(got, n.ID)
	}
	if strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") || len(g.Links) == 0 {
		t.Errorf("graph nodes %v, tshark's endpoints %v", got, sortedKeys(want))
	}

	code, body = l.get(t, l.analyst, "/api/top", l.dataQuery("dns.pcap", "group", "host", "by", "packets", "n", "100"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var top []struct {
		A       string
		Packets uint64
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != len(want) {
		t.Errorf("top: %d hosts, tshark %d", len(top), len(want))
	}
	for _, h := range top {
		if want[h.A] != h.Packets {
			t.Errorf("top: %s %d packets, tshark %d", h.A, h.Packets, want[h.A])
		}
	}
	// Bad parameters say what is wrong.
	if code, body := l.get(t, l.analyst, "/api/top", l.dataQuery("dns.pcap", "group", "country")); code != 400 || !bytes.Contains(body, []byte("want host, pair, port or proto")) {
		t.Errorf("a bad grouping: %d %s", code, body)
	}
	if code, body := l.get(t, l.analyst, "/api/flows", l.dataQuery("dns.pcap", "ip", "10.0.0.300")); code != 400 {
		t.Errorf("a bad address: %d %s", code, body)
	}
	// The flow search returns the largest flows first, as many as asked.
	code, body = l.get(t, l.analyst, "/api/flows", l.dataQuery("dns.pcap", "limit", "2"))
	var flows []struct {
		UID         string
		OrigIPBytes uint64 `json:"orig_ip_bytes"`
		RespIPBytes uint64 `json:"resp_ip_bytes"`
	}
	if err := json.Unmarshal(body, &flows); code != 200 || err != nil || len(flows) != 2 {
		t.Fatalf("limit 2: %d %s", code, body)
	}
	largest := uint64(0)
	for _, f := range l.captures["dns.pcap"].flows {
		largest = max(largest, f.OrigIPBytes+f.RespIPBytes)
	}
	if got := flows[0].OrigIPBytes + flows[0].RespIPBytes; got != largest {
		t.Errorf("the first flow has %d IP bytes, the largest %d", got, largest)
	}
	if code, _ := l.get(t, l.analyst, "/api/flows", l.dataQuery("dns.pcap", "limit", "99999")); code != 400 {
		t.Errorf("a limit over the maximum: %d", code)
	}
}

// tsharkEndpoints is the packets per IPv4 endpoint of a capture, as tshark -z endpoints,ip counts them.
func tsharkEndpoints(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-q", "-r", path, "-z", "endpoints,ip").Output()
	if err != nil {
		t.Fatalf("tshark: %v (hack/deps.sh installs it)", err)
	}
	eps := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 || strings.Count(fs[0], ".") != 3 {
			continue
		}
		var n uint64
		for _, c := range fs[1] {
			n = n*10 + uint64(c-'0')
		}
		eps[fs[0]] = n
	}
	if len(eps) == 0 {
		t.Fatalf("no endpoints in tshark's output:\n%s", out)
	}
	return eps
}

func sortedKeys(m map[string]uint64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A flow's pcap holds the packet records tcpdump selects from the capture with the flow's 5-tuple,
// byte for byte (tcpdump writing nanosecond timestamps, as the UI does).
func TestFlowPcapEqualsTcpdump(t *testing.T) {
	l := startLab(t)
	c := l.captures["http.pcap"]
	f := c.flows[0]
	code, body := l.get(t, l.analyst, "/api/flows", l.dataQuery("http.pcap", "ip", f.RespAddr.String(), "port", "80"))
	if code != 200 || !bytes.Contains(body, []byte(f.UID)) {
		t.Fatalf("flow search: %d %s, want %s", code, body, f.UID)
	}
	code, got := l.get(t, l.analyst, "/api/pcap", l.dataQuery("http.pcap", "flow", f.UID))
	if code != 200 {
		t.Fatalf("%d %s", code, got)
	}
	want := tcpdumpFlow(t, c.path, flowFilter(f.OrigAddr.String(), f.RespAddr.String(), f.OrigPort, f.RespPort))
	if n := comparePcapRecords(t, got, want); n != 10 {
		t.Errorf("%d packets, the capture's connection has 10", n)
	}
	if code, body := l.get(t, l.analyst, "/api/pcap", l.dataQuery("http.pcap", "flow", "Cnosuchflow")); code != 404 || !bytes.Contains(body, []byte("no flow")) {
		t.Errorf("an unknown flow: %d %s", code, body)
	}
}

func flowFilter(a, b string, pa, pb uint16) string {
	return "tcp and host " + a + " and host " + b + " and port " + strconv.Itoa(int(pa)) + " and port " + strconv.Itoa(int(pb))
}

// tcpdumpFlow is `tcpdump -r FILE --time-stamp-precision nano -w - FILTER`.
func tcpdumpFlow(t *testing.T, path, filter string) []byte {
	t.Helper()
	cmd := exec.Command("tcpdump", "-r", path, "--time-stamp-precision", "nano", "-w", "-", filter)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump: %v: %s (hack/deps.sh installs it)", err, stderr.String())
	}
	return out
}

// comparePcapRecords checks that two pcap files have the same link type and the same packet records
// byte for byte (the 24-byte file headers may differ in snap length), and returns how many.
func comparePcapRecords(t *testing.T, got, want []byte) int {
	t.Helper()
	if len(got) < 24 || len(want) < 24 {
		t.Fatalf("pcap files of %d and %d bytes", len(got), len(want))
	}
	if !bytes.Equal(got[:4], want[:4]) || !bytes.Equal(got[20:24], want[20:24]) {
		t.Fatalf("file headers differ in magic or link type: %x, tcpdump's %x", got[:24], want[:24])
	}
	if !bytes.Equal(got[24:], want[24:]) {
		t.Fatalf("packet records differ:\n got %x\nwant %x", got[24:], want[24:])
	}
	n := 0
	r, err := pcapfile.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// /api/traffic gives the stored counters per step: per second, the frames and bytes tshark reads from the
// same file (frame.time_epoch and frame.len, summed per second), and the same totals in one minute steps.
func TestTrafficAgreesWithTshark(t *testing.T) {
	l := startLab(t)
	c := l.captures["dns.pcap"]
	out, err := exec.Command("tshark", "-n", "-r", c.path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	type pb struct{ packets, bytes uint64 }
	want := map[int64]pb{}
	var total pb
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var sec, frac int64
		var n uint64
		if _, err := fmt.Sscanf(strings.Replace(line, ".", " ", 1), "%d %d\t%d", &sec, &frac, &n); err != nil {
			t.Fatalf("tshark line %q: %v", line, err)
		}
		p := want[sec]
		p.packets++
		p.bytes += n
		want[sec] = p
		total.packets++
		total.bytes += n
	}
	for _, step := range []string{"1s", "1m"} {
		code, body := l.get(t, l.analyst, "/api/traffic", l.dataQuery("dns.pcap", "step", step))
		if code != 200 {
			t.Fatalf("step %s: %d %s", step, code, body)
		}
		var points []struct {
			Start          time.Time
			Packets, Bytes uint64
		}
		if err := json.Unmarshal(body, &points); err != nil {
			t.Fatal(err)
		}
		var sum pb
		for _, p := range points {
			sum.packets += p.Packets
			sum.bytes += p.Bytes
			if step == "1s" && (want[p.Start.Unix()] != pb{p.Packets, p.Bytes}) {
				t.Errorf("second %s: %d packets, %d bytes; tshark %+v", p.Start, p.Packets, p.Bytes, want[p.Start.Unix()])
			}
		}
		if step == "1s" && len(points) != len(want) {
			t.Errorf("%d seconds with packets, tshark %d", len(points), len(want))
		}
		if sum != total {
			t.Errorf("step %s: %+v in all, tshark %+v", step, sum, total)
		}
	}
	if code, body := l.get(t, l.analyst, "/api/traffic", l.dataQuery("dns.pcap", "step", "soon")); code != 400 {
		t.Errorf("a bad step: %d %s", code, body)
	}
	if code, _ := l.get(t, l.outside, "/api/traffic", l.dataQuery("dns.pcap")); code != 403 {
		t.Errorf("an outsider's traffic request: %d", code)
	}
}
