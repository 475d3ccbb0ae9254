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
	"testing"
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

// knownDisagreement is a field of some packets where tshark and we differ on purpose.
type knownDisagreement struct {
	file   string // path under the corpus, or "" for every file
	field  string
	reason string
}

var knownDisagreements = []knownDisagreement{}

func exempt(file, field string) bool {
	for _, k := range knownDisagreements {
		if (k.file == "" || k.file == file) && k.field == field {
			return true
		}
	}
	return false
}

// TestDecodeParityWithTshark decodes every Ethernet capture under 256 KB in the nDPI and Zeek
// corpora and compares each packet's fields with tshark's.
func TestDecodeParityWithTshark(t *testing.T) {
	root := sharedPcaps(t)
	tshark := needTool(t, "tshark")
	files := corpusFiles(t, []string{filepath.Join(root, "ndpi"), filepath.Join(root, "zeek")}, 256<<10, 1)
	if len(files) < 100 {
		t.Fatalf("only %d Ethernet captures under 256 KB found in %s: corpus incomplete?", len(files), root)
	}
	version := tsharkVersion(t, tshark)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			want := tsharkFields(t, tshark, version, f, parityFields)
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

// tsharkFields runs tshark once per file, field list and tshark version, keeping the output in
// the repository's .cache so that later runs do not pay for tshark's start-up again.
func tsharkFields(t *testing.T, tshark, version, file string, fields []string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-n", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}, tsharkPrefs...)
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	h := sha256.New()
	h.Write(data)
	fmt.Fprintln(h, version, strings.Join(args[2:], " "))
	cache := filepath.Join(repoRoot(t), ".cache", "tshark-fields", hex.EncodeToString(h.Sum(nil))+".tsv")
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
