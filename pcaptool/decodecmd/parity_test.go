package decodecmd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

// parityFields are compared with tshark for every packet.
var parityFields = []string{
	"frame.number", "frame.time_epoch", "frame.len", "frame.cap_len",
	"eth.src", "eth.dst", "eth.type", "vlan.id",
	"ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.len",
	"ipv6.src", "ipv6.dst", "ipv6.nxt",
	"tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
	"udp.srcport", "udp.dstport", "dns.qry.name",
	"icmp.type", "icmp.code", "icmpv6.type",
}

// tsharkPrefs make tshark show each frame's own headers: with reassembly on, the transport
// header of a fragmented datagram is shown on its last fragment instead of its first.
var tsharkPrefs = []string{"-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"}

// knownDisagreement is a field of a capture where tshark and we differ, and why.
type knownDisagreement struct {
	file   string // path under the corpus
	field  string // a field name, or "*" for every field but frame.number
	reason string
}

var knownDisagreements = []knownDisagreement{
	// Protocols tshark dissects and the decoder does not (not needed for flows, or not cheap).
	{"ndpi/ajp.pcap", "tcp.len", "tshark takes the last 4 bytes of a Cisco FabricPath frame for an FCS, cutting the inner packet"},
	{"zeek/cisco-fabric-path.pcap", "tcp.len", "tshark takes the last 4 bytes of a Cisco FabricPath frame for an FCS, cutting the inner packet"},
	{"zeek/cisco-fabric-path.pcap", "ipv6.dst", "tshark takes the last 4 bytes of a Cisco FabricPath frame for an FCS, cutting the inner packet"},
	{"ndpi/capwap.pcap", "*", "CAPWAP data channel carries 802.11 frames, not decoded"},
	{"ndpi/capwap_data.pcapng", "*", "CAPWAP data channel carries 802.11 frames, not decoded"},
	{"zeek/tunnels/gre-aruba-amsdu.pcap", "*", "Aruba GRE carries 802.11 frames, not decoded"},
	{"ndpi/sflow.pcap", "*", "tshark decodes the packet headers sampled inside sFlow datagrams"},
	{"zeek/tunnels/gtp/gtp_control_prime.pcap", "*", "GTP' (UDP 3386) carrying IP not decoded; GTP-U is"},
	{"zeek/tunnels/gtp/pdp_ctx_messages.pcapng", "*", "GTP' (UDP 3386) carrying IP not decoded; GTP-U is"},
	{"zeek/pbb-recursive-frames.pcapng", "*", "802.1ah nested deeper than the decoder's layer bound"},
	{"zeek/icmp/icmp6-redirect-hdr-opt.pcap", "udp.srcport", "tshark decodes the packet inside an ICMPv6 Redirected Header option"},
	{"zeek/icmp/icmp6-redirect-hdr-opt.pcap", "udp.dstport", "tshark decodes the packet inside an ICMPv6 Redirected Header option"},
	{"zeek/ipv6-mobility-dst-opts.pcap", "udp.srcport", "tshark stops at a Mobility header that carries a payload protocol"},
	{"zeek/ipv6-mobility-dst-opts.pcap", "udp.dstport", "tshark stops at a Mobility header that carries a payload protocol"},
	// DNS found where the decoder does not look.
	{"ndpi/avast_securedns.pcapng", "dns.qry.name", "DNS on UDP 443, found by tshark's heuristic dissector; we decode DNS on ports 53, 5353, 5355"},
	{"ndpi/custom_rules_ipv6.pcapng", "dns.qry.name", "DNS on UDP 5333, found by tshark's heuristic dissector"},
	{"zeek/dns/tkey.pcap", "dns.qry.name", "DNS over TCP split across segments: tshark reassembles, we read whole messages only"},
	{"zeek/quic/vector-max-size-crash.pcap", "dns.qry.name", "tshark names an extended label type; we leave the name empty"},
	{"zeek/smtp.pcap", "tcp.seq_raw", "tshark omits seq_raw for some TCP headers quoted in ICMP errors (not others: see 6in4tunnel.pcap)"},
	// Fuzzed captures and garbage.
	{"zeek/trunc/mpls-6in6-broken.pcap", "*", "garbage after MPLS guessed differently as IPv4"},
	{"ndpi/ip_fragmented_garbage.pcap", "*", "garbage TCP headers in fragments"},
	{"ndpi/fuzz-2006-06-26-2594.pcap", "*", "fuzzed capture"},
	{"ndpi/fuzz-2020-02-16-11740.pcap", "*", "fuzzed capture"},
	{"ndpi/fuzz-2021-06-07-c6c72a0a56.pcap", "*", "fuzzed record header: tshark prints a negative time and clamps the length"},
}

func exempt(file, field string) bool {
	for _, k := range knownDisagreements {
		if k.file == file && (k.field == field || (k.field == "*" && !strings.HasPrefix(field, "frame.number"))) {
			return true
		}
	}
	return false
}

// TestDecodeParityWithTshark decodes every Ethernet capture under 256 KB in the nDPI and Zeek
// corpora (the link type read from each file's header) and compares each packet's fields with
// tshark's, run with IP reassembly off so each frame shows its own headers. tshark's output is
// cached in .cache/tshark-fields by file content, field list and tshark version: the first run
// takes minutes (one tshark start per file), later ones seconds.
func TestDecodeParityWithTshark(t *testing.T) {
	root := testenv.Pcaps(t)
	tshark := needTool(t, "tshark")
	files := corpusFiles(t, []string{filepath.Join(root, "ndpi"), filepath.Join(root, "zeek")}, 256<<10, 1)
	if len(files) < 100 {
		t.Fatalf("only %d Ethernet captures under 256 KB found in %s: corpus incomplete?", len(files), root)
	}
	version := tsharkVersion(t, tshark)
	want := tsharkAll(t, tshark, version, files)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			want := want[f]
			var got, errb bytes.Buffer
			o := &decodeOptions{fields: strings.Join(parityFields, ","), output: "tsv"}
			if err := runDecode(&got, &errb, f, o); err != nil {
				// tshark reads what it can of a damaged file; so must we, up to the error.
				t.Logf("decode: %v", err)
			}
			compareFields(t, rel, got.String(), want)
		})
	}
}

func compareFields(t *testing.T, rel, got, want string) {
	t.Helper()
	gl := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	wl := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	if got == "" {
		gl = nil
	}
	if want == "" {
		wl = nil
	}
	if len(gl) != len(wl) {
		t.Errorf("%s: %d packets decoded, tshark shows %d", rel, len(gl), len(wl))
	}
	bad := 0
	for i := 0; i < min(len(gl), len(wl)); i++ {
		g, w := strings.Split(gl[i], "\t"), strings.Split(wl[i], "\t")
		if len(g) != len(parityFields) || len(w) != len(parityFields) {
			t.Fatalf("%s line %d: %d and %d columns, want %d", rel, i+1, len(g), len(w), len(parityFields))
		}
		for j, name := range parityFields {
			if g[j] != w[j] && !exempt(rel, name) {
				bad++
				if bad <= 5 {
					t.Errorf("%s frame %d %s: got %q, tshark %q", rel, i+1, name, g[j], w[j])
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d differing fields in all", rel, bad)
	}
}

// tsharkAll runs tshark over every file with a few at a time: a tshark run is mostly start-up,
// which waits on disk as much as on the CPU, so more runs than cores keeps both busy.
func tsharkAll(t *testing.T, tshark, version string, files []string) map[string]string {
	cacheDir := filepath.Join(repoRoot(t), ".cache", "tshark-fields")
	out := make(map[string]string, len(files))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				o := tsharkFields(t, tshark, version, cacheDir, f, parityFields)
				mu.Lock()
				out[f] = o
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	return out
}

// tsharkFields runs tshark once per file, field list and tshark version, keeping the output in
// the repository's .cache so that later runs do not pay for tshark's start-up again.
func tsharkFields(t *testing.T, tshark, version, cacheDir, file string, fields []string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return ""
	}
	args := append([]string{"-n", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}, tsharkPrefs...)
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	h := sha256.New()
	h.Write(data)
	fmt.Fprintln(h, version, strings.Join(args[2:], " "))
	cache := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil))+".tsv")
	if b, err := os.ReadFile(cache); err == nil {
		return string(b)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		// tshark exits non-zero on a file cut mid-record after printing what it read.
		t.Logf("tshark: %v: %s", err, stderr.String())
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err == nil {
		tmp := cache + ".tmp" + fmt.Sprint(os.Getpid())
		if os.WriteFile(tmp, out, 0o644) == nil {
			os.Rename(tmp, cache)
		}
	}
	return string(out)
}

func tsharkVersion(t *testing.T, tshark string) string {
	out, err := exec.Command(tshark, "--version").Output()
	if err != nil {
		t.Fatalf("tshark --version: %v", err)
	}
	v, _, _ := strings.Cut(string(out), "\n")
	return v
}

func repoRoot(t testing.TB) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
