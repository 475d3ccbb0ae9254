package decodecmd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/packetjson"
)

// recordCorpus are the captures whose packet records are compared with tshark, chosen for what the
// records carry (the decoder's own parity test reads the whole corpus; tshark's start-up, a third of a
// second a file, makes a second sweep of it too slow for a cold CI run): IPv4 with options
// (IGMP's router alert, a timestamp option), IPv6 with extension headers and fragments, TCP with
// options, UDP, IPv4 fragments, checksums good and bad, ICMP errors quoting headers, tunnels, VLANs,
// and cut or bogus headers. Patterns are relative to ../shared/pcaps ("testdata/" to the repo's).
var recordCorpus = []string{
	"testdata/*.pcap",
	"zeek/igmp/*.pcap",
	"zeek/ipv4/*.pcap",
	"zeek/ipv6*.pcap",
	"zeek/chksums/*.pcap",
	"zeek/icmp/*.pcap",
	"zeek/tunnels/*.pcap",
	"zeek/tunnels/*/*.pcap*",
	"zeek/erspan*.pcap",
	"zeek/http-*vlan*.pcap",
	"zeek/http-qinq-0.pcap",
	"zeek/ip-bogus-header-len.pcap",
	"zeek/linux_dlt_sll2.pcap",
	"tcpdump/ip_ts_opts_asan.pcap",
	"tcpdump/tcp-*.pcap",
	"tcpdump/ipv6-*.pcap",
}

// recordExemptions are the fields of a capture where a record and tshark differ, and why. Each
// must still be needed: TestRecordExemptionsNotStale fails on one that no longer is.
var recordExemptions = []recordDisagreement{
	{"tcpdump/ipv6-bad-version.pcap", "ip.version", badVersion},
	{"tcpdump/ipv6-bad-version.pcap", "ipv6.version", badVersion},
	{"zeek/tunnels/gre-aruba-amsdu.pcap", "*", "Aruba GRE carries 802.11 frames, not decoded"},
	{"zeek/icmp/icmp6-redirect-hdr-opt.pcap", "udp.*", "tshark decodes the packet inside an ICMPv6 Redirected Header option"},
	{"zeek/ipv6-mobility-dst-opts.pcap", "udp.*", "tshark stops at a Mobility header that carries a payload protocol"},
}

const (
	badVersion = "an IP header whose version nibble is not its EtherType's or next header's: the decoder drops it as malformed, tshark shows its version"
)

// recordFiles expands recordCorpus into capture files under 256 KB, sorted.
func recordFiles(t *testing.T) (root string, files []string) {
	root = testenv.Pcaps(t)
	repo := repoRoot(t)
	seen := map[string]bool{}
	for _, pat := range recordCorpus {
		base := root
		if strings.HasPrefix(pat, "testdata/") {
			base = repo
		}
		m, err := filepath.Glob(filepath.Join(base, pat))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Fatalf("pattern %s matches no capture: corpus incomplete?", pat)
		}
		for _, f := range m {
			if size := fileSize(f); size > 0 && size < 256<<10 && !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
	}
	sort.Strings(files)
	return root, files
}

// relName names a capture in exemptions: relative to the shared corpus, or testdata/NAME.
func relName(root, f string) string {
	if rel, err := filepath.Rel(root, f); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return "testdata/" + filepath.Base(f)
}

// TestRecordsParityWithTshark checks every field of every packet record that `pcap decode
// --json-records` prints against what tshark prints for the same field of the same packet
// (`-T fields -E occurrence=f`, reassembly off): a field a record leaves out must be empty in
// tshark's output, and one tshark prints must be in the record with the same text.
func TestRecordsParityWithTshark(t *testing.T) {
	tshark := needTool(t, "tshark")
	root, files := recordFiles(t)
	version := tsharkVersion(t, tshark)
	names := packetjson.Fields()
	cacheDir := filepath.Join(repoRoot(t), ".cache", "tshark-fields")
	used := map[recordDisagreement]bool{}
	seen := map[string]int{} // packets where tshark shows the field: every field must be exercised
	var packets, compared, differing int
	wants := tsharkRecordFields(t, tshark, version, cacheDir, files, names)
	for _, f := range files {
		rel := relName(root, f)
		want := wants[f]
		var got, errb bytes.Buffer
		if err := runDecode(&got, &errb, f, &decodeOptions{records: true}); err != nil {
			t.Logf("%s: decode: %v", rel, err) // tshark too reads a damaged file up to the damage
		}
		recs := parseRecords(t, rel, got.Bytes())
		wl := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
		if want == "" {
			wl = nil
		}
		if len(recs) != len(wl) {
			t.Errorf("%s: %d records, tshark shows %d packets", rel, len(recs), len(wl))
			continue
		}
		packets += len(recs)
		bad := 0
		for i, rec := range recs {
			cols := strings.Split(wl[i], "\t")
			if len(cols) != len(names) {
				t.Fatalf("%s line %d: %d columns from tshark, want %d", rel, i+1, len(cols), len(names))
			}
			for j, name := range names {
				compared++
				g, w := rec[name], cols[j]
				if w != "" {
					seen[name]++
				}
				if g == w {
					continue
				}
				if k, ok := recordExemption(rel, name); ok {
					used[k] = true
					continue
				}
				differing++
				if bad++; bad <= 5 {
					t.Errorf("%s frame %d %s: record %q, tshark %q", rel, i+1, name, g, w)
				}
			}
		}
	}
	t.Logf("%d captures, %d packets, %d fields compared, %d differing outside the exemptions", len(files), packets, compared, differing)
	if packets < 3000 {
		t.Errorf("only %d packets compared: corpus incomplete?", packets)
	}
	for _, name := range names {
		if seen[name] == 0 {
			t.Errorf("no packet of the corpus has %s: the comparison does not exercise it", name)
		}
	}
	t.Logf("packets per field: %v", seen)
	for _, k := range recordExemptions {
		if !used[k] {
			t.Errorf("exemption %s %s (%s) is stale: record and tshark agree, remove it", k.file, k.field, k.reason)
		}
	}
}

// tsharkRecordFields runs tshark on the files a few at a time (its start-up dominates), through the
// cache that tsharkFields keeps in .cache/tshark-fields.
func tsharkRecordFields(t *testing.T, tshark, version, cacheDir string, files, names []string) map[string]string {
	out := make(map[string]string, len(files))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				o := tsharkFirstFields(t, tshark, version, cacheDir, f, names)
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

func recordExemption(file, field string) (recordDisagreement, bool) {
	for _, k := range recordExemptions {
		if k.file != file {
			continue
		}
		if k.field == field || (k.field == "*" && field != "frame.number") ||
			(strings.HasSuffix(k.field, ".*") && strings.HasPrefix(field, strings.TrimSuffix(k.field, "*"))) {
			return k, true
		}
	}
	return recordDisagreement{}, false
}

// parseRecords reads one JSON object per line into the text of each field: a number as written,
// a string unquoted, which is what tshark prints in its column.
func parseRecords(t *testing.T, rel string, out []byte) []map[string]string {
	t.Helper()
	var recs []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%s record %d is not JSON: %v: %s", rel, len(recs)+1, err, sc.Text())
		}
		r := make(map[string]string, len(m))
		for k, v := range m {
			switch v := v.(type) {
			case string:
				r[k] = v
			case json.Number:
				r[k] = v.String()
			default:
				t.Fatalf("%s record %d: %s is %T, want a string or number", rel, len(recs)+1, k, v)
			}
		}
		recs = append(recs, r)
	}
	return recs
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}

// recordDisagreement is a field of a capture where a packet record and tshark differ, and why.
type recordDisagreement struct {
	file   string // path under the corpus
	field  string // a field name, "proto.*" for a protocol's fields, or "*" for every field
	reason string
}

// tsharkFirstFields is tshark's first occurrence of each field for every packet of file, cached by the
// file's content, the arguments and tshark's version.
func tsharkFirstFields(t *testing.T, tshark, version, cacheDir, file string, fields []string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return ""
	}
	args := []string{"-n", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
		"-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"}
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
