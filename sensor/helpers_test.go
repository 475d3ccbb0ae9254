package sensor

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/linktype"
)

// failOrSkip fails under CI=true, where every prerequisite must be present,
// and skips on a developer machine that lacks one.
func failOrSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Missing(t, format, args...)
}

// sharedPcap is a file under ../shared/pcaps next to the checkout
// (CAPFLEET_PCAPS overrides the directory).
func sharedPcap(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("CAPFLEET_PCAPS")
	if dir == "" {
		wd, _ := os.Getwd()
		dir = filepath.Join(wd, "..", "..", "shared", "pcaps")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		failOrSkip(t, "real capture %s not found (set CAPFLEET_PCAPS): %v", p, err)
	}
	return p
}

// readPcap returns the frames of a pcap file as pcapgo reads them. pcapgo's
// link type has 8 bits, enough for the Ethernet captures the tests use.
func readPcap(t testing.TB, path string) (frames [][]byte, lt linktype.Type) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, linktype.Type(r.LinkType())
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", path, len(frames)+1, err)
		}
		frames = append(frames, data)
	}
}

// tcpdumpSelect returns the frames of file that `tcpdump -r file expr` selects.
func tcpdumpSelect(t testing.TB, file, expr string) [][]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "selected.pcap")
	cmd := exec.Command("tcpdump", "-r", file, "-w", out, expr)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcpdump -r %s %q: %v\n%s", file, expr, err, b)
	}
	frames, _ := readPcap(t, out)
	return frames
}

// vethNS is a network namespace holding both ends of a veth pair: frames
// sent on Tx arrive on Rx and nothing reaches the host's routing.
type vethNS struct {
	Name, Path string
	Tx, Rx     string
}

// newVethNS makes the namespace, with IPv6 off and no addresses, so the
// links stay silent and the only frames on them are those a test sends.
func newVethNS(t testing.TB) vethNS {
	t.Helper()
	for _, tool := range []string{"ip", "tcpreplay", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			failOrSkip(t, "%s is missing: run hack/deps.sh", tool)
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := vethNS{Name: "cfsensor-" + hex.EncodeToString(suffix), Tx: "cftx", Rx: "cfrx"}
	n.Path = "/var/run/netns/" + n.Name
	if b, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		failOrSkip(t, "cannot create a network namespace (needs root): ip netns add: %v: %s", err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, b)
		}
	})
	n.run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	n.run(t, "ip", "link", "add", n.Tx, "type", "veth", "peer", "name", n.Rx)
	for _, dev := range []string{n.Tx, n.Rx} {
		// Real captures hold frames far above 1500 bytes (offloaded segments).
		n.run(t, "ip", "link", "set", dev, "mtu", "65000", "up")
	}
	return n
}

func (n vethNS) run(t testing.TB, args ...string) string {
	t.Helper()
	b, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

var tcpreplayOK = regexp.MustCompile(`Successful packets:\s+(\d+)`)
var tcpreplayFailed = regexp.MustCompile(`Failed packets:\s+(\d+)`)

// replay sends file out of Tx at pps packets per second and returns how many
// packets tcpreplay says it sent; it fails the test on any failed send.
func (n vethNS) replay(t testing.TB, file string, pps int) int {
	t.Helper()
	out := n.run(t, "tcpreplay", "-i", n.Tx, "--pps", strconv.Itoa(pps), file)
	ok, failed := tcpreplayOK.FindStringSubmatch(out), tcpreplayFailed.FindStringSubmatch(out)
	if ok == nil || failed == nil || failed[1] != "0" {
		t.Fatalf("tcpreplay did not send cleanly:\n%s", out)
	}
	sent, _ := strconv.Atoi(ok[1])
	return sent
}

// consumeAll reads every record of topic, from the start to the end offsets
// the broker reports now.
func consumeAll(t testing.TB, cfg kafkaconn.Config, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admCl, err := cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		total += o.Offset
	})
	var recs []*kgo.Record
	if total == 0 {
		return recs
	}
	parts := map[int32]kgo.Offset{}
	for p := range want {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := cfg.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for int64(len(recs)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(recs), total, topic, err)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

// multiset counts frames by their bytes.
func multiset(frames [][]byte) map[string]int {
	m := make(map[string]int, len(frames))
	for _, f := range frames {
		m[string(f)]++
	}
	return m
}

// diffMultisets describes how got differs from want, or returns "".
func diffMultisets(want, got map[string]int) string {
	var b bytes.Buffer
	missing, extra := 0, 0
	for f, n := range want {
		if got[f] < n {
			missing += n - got[f]
		}
	}
	for f, n := range got {
		if want[f] < n {
			extra += n - want[f]
			if extra <= 3 {
				fmt.Fprintf(&b, "  unexpected frame (%d bytes): % x...\n", len(f), []byte(f)[:min(len(f), 40)])
			}
		}
	}
	if missing == 0 && extra == 0 {
		return ""
	}
	return fmt.Sprintf("%d frames missing, %d unexpected\n%s", missing, extra, b.String())
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
