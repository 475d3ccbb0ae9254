package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// sha256sum is the coreutils digest of a file, as a user would compute it for --sha256.
func sha256sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// serveFile serves one real capture on loopback, at any path.
func serveFile(t *testing.T, path string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/captures/teamviewer.pcap" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestReplayFromURLIntoTopic(t *testing.T) {
	cfg := kafkatest.Plain(t)
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	srv := serveFile(t, path)
	topic := kafkatest.NewTopic(t, cfg, 2)
	brokers := strings.Join(cfg.Brokers, ",")
	url := srv.URL + "/captures/teamviewer.pcap?X-Amz-Signature=s3cr3t"
	replayCommand(t, NewCommand(), "--url", url, "--sha256", strings.ToUpper(sha256sum(t, path)),
		"--topic", topic, "--pps", "5000", "--metrics-addr", "", "--kafka-brokers", brokers)
	checkTopicHolds(t, cfg, topic, 2, readFile(t, path), 1)

	t.Run("digest mismatch sends nothing", func(t *testing.T) {
		topic := kafkatest.NewTopic(t, cfg, 1)
		wrong := strings.Repeat("ab", 32)
		out, err := execute(NewCommand(), "--url", url, "--sha256", wrong, "--topic", topic, "--top-speed",
			"--metrics-addr", "", "--kafka-brokers", brokers)
		if err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") || !strings.Contains(err.Error(), wrong) {
			t.Fatalf("error %v, want a SHA-256 mismatch naming %s", err, wrong)
		}
		if strings.Contains(err.Error()+out, "s3cr3t") {
			t.Fatalf("the URL's query string leaked: %v %s", err, out)
		}
		if got := consumeAll(t, cfg, topic); len(got) != 0 {
			t.Fatalf("records were sent despite the mismatch: %d partitions with data", len(got))
		}
	})
}

// Bad inputs end the command with an error that says what is wrong, before anything is sent.
func TestReplayBadInputs(t *testing.T) {
	real := sharedPcap(t, "ndpi/teamviewer.pcap")
	dir := t.TempDir()
	truncated := filepath.Join(dir, "cut.pcap")
	b, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	srv := serveFile(t, real)
	sum := sha256sum(t, real)
	defer func(d time.Duration) { defaultConnectTimeout = d }(defaultConnectTimeout)
	defaultConnectTimeout = 3 * time.Second

	cases := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
		want []string
	}{
		{"missing file", NewCommand, []string{"--file", filepath.Join(dir, "nope.pcap"), "--interface", "lo"},
			[]string{"capture file: stat " + filepath.Join(dir, "nope.pcap") + ": no such file or directory"}},
		{"truncated file", NewCommand, []string{"--file", truncated, "--interface", "lo", "--metrics-addr", ""},
			[]string{"capture file " + truncated + ": offset ", "truncated", "(after 145 good packets; nothing was sent)"}},
		{"capture without packets", NewCommand, []string{"--file", sharedPcap(t, "gopacket/pcapgo/tests/le/test003.pcapng"), "--interface", "lo", "--loop", "0", "--metrics-addr", ""},
			[]string{"capture file " + sharedPcap(t, "gopacket/pcapgo/tests/le/test003.pcapng") + ": the capture holds no packets"}},
		{"not a capture", NewCommand, []string{"--file", "/etc/hostname", "--interface", "lo"},
			[]string{"capture file: /etc/hostname: "}},
		{"wrong sha256 of a local file", NewCommand, []string{"--file", real, "--sha256", strings.Repeat("0", 64), "--interface", "lo"},
			[]string{"SHA-256 mismatch: the file hashes to " + sum}},
		{"sha256 not hex", NewCommand, []string{"--url", srv.URL + "/captures/teamviewer.pcap", "--sha256", "xyz", "--interface", "lo"},
			[]string{`--sha256 "xyz": want 64 hex digits`}},
		{"url without sha256", NewCommand, []string{"--url", srv.URL + "/captures/teamviewer.pcap", "--interface", "lo"},
			[]string{"--url needs --sha256"}},
		{"url not found", NewCommand, []string{"--url", srv.URL + "/captures/other.pcap", "--sha256", sum, "--interface", "lo"},
			[]string{"GET " + srv.URL + "/captures/other.pcap: 404 Not Found"}},
		{"file and url", NewCommand, []string{"--file", real, "--url", srv.URL, "--sha256", sum, "--interface", "lo"},
			[]string{"give either --file or --url, not both"}},
		{"no source", NewCommand, []string{"--interface", "lo"}, []string{"nothing to replay: give --file PATH, or --url URL with --sha256"}},
		{"two paces", NewCommand, []string{"--file", real, "--interface", "lo", "--pps", "100", "--mbps", "10"},
			[]string{ErrPaceConflict.Error()}},
		{"pace with top speed", NewCommand, []string{"--file", real, "--interface", "lo", "--multiplier", "2", "--top-speed"},
			[]string{ErrPaceConflict.Error()}},
		{"zero rate", NewCommand, []string{"--file", real, "--interface", "lo", "--pps", "0"},
			[]string{"pace: 0 packets/s: the rate must be a positive number"}},
		{"negative loop", NewCommand, []string{"--file", real, "--interface", "lo", "--loop", "-1", "--metrics-addr", ""},
			[]string{"--loop -1: must be 0 (forever) or more"}},
		{"no target", NewCommand, []string{"--file", real}, []string{"nowhere to replay to"}},
		{"two targets", NewCommand, []string{"--file", real, "--interface", "lo", "--topic", "packets"},
			[]string{"give either --interface or --topic, not both"}},
		{"pcap replay without a target", NewPcapCommand, []string{real}, []string{"nowhere to replay to: give --interface IF or --to-topic TOPIC"}},
		{"missing interface", NewCommand, []string{"--file", real, "--interface", "capfleet-nope0"},
			[]string{`interface "capfleet-nope0": `, "no such network interface"}},
		{"unreachable broker", NewCommand, []string{"--file", real, "--topic", "packets", "--kafka-brokers", "127.0.0.1:1"},
			[]string{`kafka 127.0.0.1:1: looking up topic "packets": `, "connection refused"}},
		{"pcap replay without a file", NewPcapCommand, []string{"--interface", "lo"}, []string{"accepts 1 arg(s), received 0"}},
		{"pcap replay missing file", NewPcapCommand, []string{filepath.Join(dir, "nope.pcap"), "--to-topic", "packets"},
			[]string{"no such file or directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := execute(c.cmd(), c.args...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			t.Logf("error: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(out, "Actual:") {
				t.Fatalf("a replay ran:\n%s", out)
			}
		})
	}
}

func TestReplayUnknownTopic(t *testing.T) {
	cfg := kafkatest.Plain(t)
	_, err := execute(NewCommand(), "--file", sharedPcap(t, "ndpi/teamviewer.pcap"), "--topic", "capfleet-no-such-topic",
		"--metrics-addr", "", "--kafka-brokers", strings.Join(cfg.Brokers, ","))
	if err == nil || !strings.Contains(err.Error(), `topic "capfleet-no-such-topic" does not exist`) {
		t.Fatalf("error %v", err)
	}
}

// `pcap replay` with output that is not a terminal prints the summary and no progress bar.
func TestPcapReplayCommandIntoTopic(t *testing.T) {
	cfg := kafkatest.Plain(t)
	path := sharedPcap(t, "ndpi/stun_google_meet.pcapng")
	topic := kafkatest.NewTopic(t, cfg, 1)
	out := replayCommand(t, NewPcapCommand(), path, "--to-topic", topic, "--mbps", "50", "--kafka-brokers", strings.Join(cfg.Brokers, ","))
	if strings.Contains(out, "\r") || strings.Contains(out, "%") {
		t.Fatalf("a progress bar was drawn into a non-terminal:\n%q", out)
	}
	checkTopicHolds(t, cfg, topic, 1, readFile(t, path), 1)
}

// /metrics shows the totals from the pre-scan and the counters moving while the run goes on.
func TestMetricsWhileRunning(t *testing.T) {
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	r, err := New(Config{Open: OpenFile(path), Pace: Pace{PPS, 500}, Loops: 2, Target: &memTarget{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Scan(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := ServeMetrics(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	file := readFile(t, path)
	var fileBytes int
	for _, p := range file {
		fileBytes += len(p.data)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Run(ctx); done <- err }()

	for r.Progress().PacketsSent < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	m := scrape(t, "http://"+addr.String()+"/metrics")
	if m["capfleet_replay_packets"] != float64(2*len(file)) || m["capfleet_replay_bytes"] != float64(2*fileBytes) {
		t.Fatalf("totals on /metrics: packets %v bytes %v; want %d and %d", m["capfleet_replay_packets"], m["capfleet_replay_bytes"], 2*len(file), 2*fileBytes)
	}
	if sent := m["capfleet_replay_packets_sent_total"]; sent < 100 || sent >= float64(2*len(file)) {
		t.Fatalf("packets sent mid-run: %v", sent)
	}
	if ratio := m["capfleet_replay_progress_ratio"]; ratio <= 0 || ratio >= 1 {
		t.Fatalf("progress ratio mid-run: %v", ratio)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m = scrape(t, "http://"+addr.String()+"/metrics")
	if m["capfleet_replay_packets_sent_total"] != float64(2*len(file)) || m["capfleet_replay_progress_ratio"] != 1 || m["capfleet_replay_loops_completed_total"] != 2 {
		t.Fatalf("at the end: %v", m)
	}
}

func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// `pcap replay --create-topic N` makes a missing topic with N partitions, then fills it.
func TestPcapReplayCreatesMissingTopic(t *testing.T) {
	cfg := kafkatest.Plain(t)
	path := sharedPcap(t, "ndpi/stun_google_meet.pcapng")
	topic := fmt.Sprintf("capfleet-created-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if cl, err := cfg.NewClient(); err == nil {
			_, _ = kadm.NewClient(cl).DeleteTopic(context.Background(), topic)
			cl.Close()
		}
	})
	replayCommand(t, NewPcapCommand(), path, "--to-topic", topic, "--create-topic", "3", "--top-speed",
		"--kafka-brokers", strings.Join(cfg.Brokers, ","))
	checkTopicHolds(t, cfg, topic, 3, readFile(t, path), 1)
}
