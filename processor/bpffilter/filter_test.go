package bpffilter

import (
	"capfleet.dev/capfleet/internal/testenv"

	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"capfleet.dev/capfleet/pcapfile"
)

// Filters compared with tcpdump. None uses "len"/"greater"/"less", which libpcap evaluates on
// the wire length and the Go VM on the captured length (see Filter.Match).
var equivalenceFilters = []string{
	"tcp",
	"udp port 53",
	"icmp or icmp6",
	"ip6",
	"vlan",
	"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
	"net 10.0.0.0/8 or host 141.142.220.118",
	"ip proto 47 or udp port 4789 or mpls",
}

func corpus(t *testing.T) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(filepath.Dir(dir), "shared", "pcaps")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "capture corpus missing at %s: %v", p, err)
	}
	return p
}

type pkt struct {
	data []byte
	lt   uint32
}

func readAll(path string) ([]pkt, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []pkt
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, pkt{append([]byte(nil), p.Data...), uint32(p.LinkType)})
	}
}

// tcpdumpCount is how many packets `tcpdump -r path filter` selects, counted from the capture
// tcpdump writes (its text output may span several lines per packet).
func tcpdumpCount(t *testing.T, tcpdump, path, filter string) (int, bool) {
	out := filepath.Join(t.TempDir(), "out.pcap")
	args := []string{"-r", path, "-w", out}
	if filter != "" {
		args = append(args, filter)
	}
	if msg, err := exec.Command(tcpdump, args...).CombinedOutput(); err != nil {
		if strings.Contains(string(msg), "truncated") || strings.Contains(string(msg), "bogus") {
			return 0, false
		}
		t.Logf("tcpdump %s: %v: %s", strings.Join(args, " "), err, msg)
		return 0, false
	}
	pkts, err := readAll(out)
	if err != nil {
		t.Fatalf("reading tcpdump's output: %v", err)
	}
	return len(pkts), true
}

// TestMatchesTcpdump runs each filter over real captures (Zeek's tunnel and ICMP traces and
// VLAN/MPLS ones: every link type and encapsulation that matters to filters) and requires the
// same number of matches as tcpdump. Files libpcap and our reader read differently are skipped.
func TestMatchesTcpdump(t *testing.T) {
	root := corpus(t)
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		testenv.Missing(t, "tcpdump not installed: run bash hack/deps.sh")
	}
	var files []string
	for _, dir := range []string{"zeek/tunnels", "zeek/icmp"} {
		m, _ := filepath.Glob(filepath.Join(root, dir, "*.pcap*"))
		files = append(files, m...)
	}
	for _, f := range []string{"zeek/wikipedia.pcap", "zeek/q-in-q.pcap", "zeek/mpls-in-vlan.pcap", "zeek/mixed-vlan-mpls.pcap"} {
		files = append(files, filepath.Join(root, f))
	}
	if len(files) < 40 {
		t.Fatalf("only %d captures found under %s", len(files), root)
	}
	compared := 0
	for _, f := range files {
		pkts, err := readAll(f)
		total, ok := tcpdumpCount(t, tcpdump, f, "")
		if err != nil || !ok || total != len(pkts) {
			t.Logf("skip %s: reader and libpcap disagree (%d vs %d packets, %v)", f, len(pkts), total, err)
			continue
		}
		for _, expr := range equivalenceFilters {
			want, ok := tcpdumpCount(t, tcpdump, f, expr)
			if !ok {
				continue
			}
			s, err := NewSet(expr)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, p := range pkts {
				if s.Match(p.data, p.lt, len(p.data)) {
					got++
				}
			}
			if got != want {
				t.Errorf("%s %q: %d match, tcpdump %d (link errors %v)", f, expr, got, want, s.LinkErrors())
			}
			if s.Accepted+s.Rejected != uint64(len(pkts)) || s.Accepted != uint64(got) {
				t.Errorf("%s %q: counters %d+%d for %d packets", f, expr, s.Accepted, s.Rejected, len(pkts))
			}
			compared++
		}
	}
	if compared < 200 {
		t.Errorf("only %d file/filter pairs compared", compared)
	}
}

func TestSyntaxErrorIsReported(t *testing.T) {
	_, err := NewSet("tcp port")
	if err == nil || !strings.Contains(err.Error(), "tcp port") {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyExpressionMatchesAll(t *testing.T) {
	s, err := NewSet("")
	if err != nil || s.Active() || !s.Match(nil, 1, 0) {
		t.Fatalf("empty set: %v", err)
	}
}
