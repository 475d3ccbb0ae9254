package decodecmd

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// minParity is the share of (packet, field) pairs over the whole corpus on which the decoder and
// tshark must agree, exempted pairs counted as disagreeing.
const minParity = 0.995

// exemption is a set of frames of one capture where a field of ours differs from tshark's, and why.
type exemption struct {
	file   string // path under the corpus
	fields string // field names, comma-separated
	frames string // frame numbers and ranges, comma-separated: "7", "1-20,31"
	reason string
}

var exemptions = []exemption{}

// exemptionSet is an exemption parsed for lookups.
type exemptionSet struct {
	fields map[string]bool
	frames [][2]int
}

func parseExemptions(t testing.TB, es []exemption) map[string][]int {
	byFile := map[string][]int{}
	for i, e := range es {
		if e.file == "" || e.fields == "" || e.frames == "" || e.reason == "" {
			t.Fatalf("exemption %d (%s) lacks a file, field, frame or reason", i, e.file)
		}
		byFile[e.file] = append(byFile[e.file], i)
	}
	return byFile
}

func (e exemption) parse(t testing.TB) exemptionSet {
	s := exemptionSet{fields: map[string]bool{}}
	for _, f := range strings.Split(e.fields, ",") {
		if !slices.Contains(parityFields, f) {
			t.Fatalf("exemption for %s names %q, not a parity field", e.file, f)
		}
		s.fields[f] = true
	}
	for _, r := range strings.Split(e.frames, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 1 || b < a {
			t.Fatalf("exemption for %s: bad frames %q", e.file, e.frames)
		}
		s.frames = append(s.frames, [2]int{a, b})
	}
	return s
}

func (s exemptionSet) covers(field string, frame int) bool {
	if !s.fields[field] {
		return false
	}
	for _, r := range s.frames {
		if frame >= r[0] && frame <= r[1] {
			return true
		}
	}
	return false
}

// parityCount is what the comparison found for one field, or one file's field.
type parityCount struct{ pairs, agree, exempt int }

// parityTally gathers the counts of every file compared; files are compared concurrently.
type parityTally struct {
	mu      sync.Mutex
	byField map[string]*parityCount
	byFile  map[[2]string]*parityCount // file, field
	hits    []int                      // pairs each exemption covered
	files   int
	packets int
}

// TestDecodeParityWithTshark decodes every capture tshark reads under the shared corpus (every
// file of every folder, whatever its link type or size; tshark itself says which files are
// captures) and compares every occurrence of each field with tshark's -E occurrence=a output, run
// with IP reassembly off so each frame shows its own headers. A pair that differs fails the test
// unless an exemption names its file, field and frame; an exemption that covers no differing pair
// fails it too, and so does a parity under minParity. The parity per field is printed at the end
// and written to .cache/tshark-parity.txt. tshark's output is cached in .cache/tshark-fields by
// file content, arguments and tshark version: the first run takes many minutes (one tshark start
// per file), later ones about a minute.
func TestDecodeParityWithTshark(t *testing.T) {
	root := testenv.Pcaps(t)
	tshark := needTool(t, "tshark")
	version := tsharkVersion(t, tshark)
	cacheDir := filepath.Join(repoRoot(t), ".cache", "tshark-fields")
	files := allFiles(t, root)

	byFile := parseExemptions(t, exemptions)
	sets := make([]exemptionSet, len(exemptions))
	for i, e := range exemptions {
		sets[i] = e.parse(t)
	}
	tally := &parityTally{byField: map[string]*parityCount{}, byFile: map[[2]string]*parityCount{}, hits: make([]int, len(exemptions))}

	work := make(chan string)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				want, ok := tsharkFields(t, tshark, version, cacheDir, f)
				if !ok {
					continue // not a capture tshark reads
				}
				rel, _ := filepath.Rel(root, f)
				var got, errb bytes.Buffer
				o := &decodeOptions{fields: strings.Join(parityFields, ","), output: "tsv"}
				if err := runDecode(&got, &errb, f, o); err != nil {
					// tshark reads what it can of a damaged file; so must we, up to the error.
					t.Logf("%s: decode: %v", rel, err)
				}
				var fileSets []exemptionSet
				var fileIdx []int
				for _, i := range byFile[rel] {
					fileSets, fileIdx = append(fileSets, sets[i]), append(fileIdx, i)
				}
				compareFields(t, rel, got.String(), want, fileSets, fileIdx, tally)
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()

	if tally.files < 1000 {
		t.Errorf("only %d captures read by tshark under %s: corpus incomplete?", tally.files, root)
	}
	for i, e := range exemptions {
		if tally.hits[i] == 0 {
			t.Errorf("exemption %s %s frames %s covers no differing pair any more: remove it (%s)", e.file, e.fields, e.frames, e.reason)
		}
	}
	summary := tally.summary()
	t.Log("\n" + summary)
	os.WriteFile(filepath.Join(repoRoot(t), ".cache", "tshark-parity.txt"), []byte(summary), 0o644)
	var all parityCount
	for _, c := range tally.byField {
		all.pairs, all.agree = all.pairs+c.pairs, all.agree+c.agree
	}
	if p := float64(all.agree) / float64(max(all.pairs, 1)); p < minParity {
		t.Errorf("parity %.5f (%d of %d pairs), want at least %.3f", p, all.agree, all.pairs, minParity)
	}
}

// allFiles lists every regular file under root: which are captures is for tshark to say.
func allFiles(t testing.TB, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if e.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// splitRows indexes tab-separated lines by their first column, the frame number.
func splitRows(out string) (map[int][]string, []int) {
	rows := map[int][]string{}
	var order []int
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		cols := strings.Split(l, "\t")
		n, err := strconv.Atoi(cols[0])
		if err != nil {
			continue
		}
		if _, dup := rows[n]; !dup {
			order = append(order, n)
		}
		rows[n] = cols
	}
	return rows, order
}

func compareFields(t *testing.T, rel, got, want string, sets []exemptionSet, idx []int, tally *parityTally) {
	gr, gorder := splitRows(got)
	wr, worder := splitRows(want)
	frames := worder
	for _, n := range gorder {
		if _, ok := wr[n]; !ok {
			frames = append(frames, n)
		}
	}
	if len(gr) != len(wr) {
		t.Errorf("%s: %d packets decoded, tshark shows %d", rel, len(gr), len(wr))
	}
	counts := make([]parityCount, len(parityFields))
	hits := make([]int, len(sets))
	bad := 0
	for _, n := range frames {
		g, w := gr[n], wr[n]
		for j, name := range parityFields {
			var gv, wv string
			if j < len(g) {
				gv = g[j]
			}
			if j < len(w) {
				wv = w[j]
			}
			counts[j].pairs++
			if gv == wv {
				counts[j].agree++
				continue
			}
			exempt := false
			for k, s := range sets {
				if s.covers(name, n) {
					exempt = true
					hits[k]++
				}
			}
			if exempt {
				counts[j].exempt++
				continue
			}
			bad++
			if bad <= 5 {
				t.Errorf("%s frame %d %s: got %q, tshark %q", rel, n, name, gv, wv)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d differing fields in all", rel, bad)
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	tally.files++
	tally.packets += len(frames)
	for j, name := range parityFields {
		c := tally.byField[name]
		if c == nil {
			c = &parityCount{}
			tally.byField[name] = c
		}
		c.pairs, c.agree, c.exempt = c.pairs+counts[j].pairs, c.agree+counts[j].agree, c.exempt+counts[j].exempt
		if counts[j].agree < counts[j].pairs {
			fc := counts[j]
			tally.byFile[[2]string{rel, name}] = &fc
		}
	}
	for k, i := range idx {
		tally.hits[i] += hits[k]
	}
}

// summary is the parity per field, then the file and field pairs that lose the most.
func (tl *parityTally) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tshark field parity over %d captures, %d packets (-E occurrence=a)\n", tl.files, tl.packets)
	fmt.Fprintf(&b, "%-16s %10s %10s %8s %8s %9s\n", "field", "pairs", "agree", "exempt", "differ", "parity")
	var all parityCount
	for _, name := range parityFields {
		c := tl.byField[name]
		if c == nil {
			c = &parityCount{}
		}
		all.pairs, all.agree, all.exempt = all.pairs+c.pairs, all.agree+c.agree, all.exempt+c.exempt
		fmt.Fprintf(&b, "%-16s %10d %10d %8d %8d %9.5f\n", name, c.pairs, c.agree, c.exempt, c.pairs-c.agree-c.exempt, float64(c.agree)/float64(max(c.pairs, 1)))
	}
	fmt.Fprintf(&b, "%-16s %10d %10d %8d %8d %9.5f\n", "all", all.pairs, all.agree, all.exempt, all.pairs-all.agree-all.exempt, float64(all.agree)/float64(max(all.pairs, 1)))
	type loss struct {
		key  [2]string
		lost int
	}
	var losses []loss
	for k, c := range tl.byFile {
		losses = append(losses, loss{k, c.pairs - c.agree})
	}
	slices.SortFunc(losses, func(a, b loss) int {
		return cmp.Or(b.lost-a.lost, cmp.Compare(a.key[0], b.key[0]), cmp.Compare(a.key[1], b.key[1]))
	})
	fmt.Fprintf(&b, "most pairs lost (exempted ones included):\n")
	for _, l := range losses[:min(len(losses), 40)] {
		fmt.Fprintf(&b, "%8d %s %s\n", l.lost, l.key[0], l.key[1])
	}
	return b.String()
}

// tsharkArgs are tshark's arguments for the parity fields of a file, less the file.
func tsharkArgs() []string {
	args := append([]string{"-n", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"}, tsharkPrefs...)
	for _, f := range parityFields {
		args = append(args, "-e", f)
	}
	return args
}

// tsharkFields runs tshark once per file content, arguments and tshark version, keeping the
// output in the repository's .cache so that later runs do not pay for tshark's start-up again.
// ok is false when tshark reads no capture from the file (a log, a script, a format it does not
// know): that too is cached.
func tsharkFields(t testing.TB, tshark, version, cacheDir, file string) (out string, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return "", false
	}
	args := tsharkArgs()
	h := sha256.New()
	h.Write(data)
	fmt.Fprintln(h, version, strings.Join(args, " "))
	key := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil)))
	if b, err := os.ReadFile(key + ".tsv"); err == nil {
		return string(b), true
	}
	if _, err := os.Stat(key + ".unread"); err == nil {
		return "", false
	}
	cmd := exec.Command(tshark, append([]string{"-r", file}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	ok = err == nil || len(stdout) > 0 // tshark exits non-zero on a file cut mid-record after printing what it read
	if ee, isExit := err.(*exec.ExitError); !ok && isExit && ee.ExitCode() < 0 {
		t.Errorf("tshark on %s: %v", file, err) // killed: do not cache
		return "", false
	}
	name, body := key+".tsv", stdout
	if !ok {
		name, body = key+".unread", stderr.Bytes()
	}
	if err := os.MkdirAll(cacheDir, 0o755); err == nil {
		tmp := name + ".tmp" + fmt.Sprint(os.Getpid())
		if os.WriteFile(tmp, body, 0o644) == nil {
			os.Rename(tmp, name)
		}
	}
	return string(stdout), ok
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
