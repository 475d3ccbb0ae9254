package displayfilter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

// tsharkClasses sorts tshark 4.0's messages into the classes of Error, first match wins.
var tsharkClasses = []struct {
	re    *regexp.Regexp
	class Class
}{
	{regexp.MustCompile(`was unexpected in this context|Expected digit or|is not a valid character escape|is not a valid universal character|final quote was missing`), ClassSyntax},
	{regexp.MustCompile(`Unexpected end of filter expression`), ClassEnd},
	{regexp.MustCompile(`is neither a field nor a protocol name|Left side of .* must be a field or function`), ClassUnknownField},
	{regexp.MustCompile(`not of compatible types|cannot participate in`), ClassType},
	{regexp.MustCompile(`is not a valid|too big for this field|too few bytes|too many bytes|cannot be found among the possible values|Netmask bits|Prefix in a|cannot be converted from a string|causes an integer overflow|Regex compilation error`), ClassValue},
}

// knownErrorDifferences are filters whose error differs from tshark's, and why.
var knownErrorDifferences = map[string]string{
	"eth.dst == zz:zz:zz:zz:zz:zz": "tshark's scanner reads a MAC address only when it is hex and so stops at the first ':'; we read the word whole and reject it as a value",
	"ipv6.src == 2001:db8::g":      "tshark's scanner ends an IPv6 address at the first letter past f; we read the word whole and reject it as a value",
	"udp.length > -":               "tshark 4 reads - as arithmetic negation and waits for its operand; we have no arithmetic and reject - as a value",
	"{80}":                         "tshark 4 reads {...} as an arithmetic group; we have no arithmetic and reject the brace",
}

type tsharkError struct {
	msg   string
	class Class
	pos   int // -1 when tshark names no place
}

// TestErrorsMatchTshark compiles every filter of testdata/errors.txt, which tshark rejects, and
// compares our error's class and column with tshark's (-Y on a small capture). tshark's answers are
// cached in .cache/tshark-dferrors by filter and tshark version.
func TestErrorsMatchTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		testenv.Missing(t, "tshark not installed: run bash hack/deps.sh")
	}
	root := testenv.Root(t)
	capture := filepath.Join(root, "testdata", "http.pcap")
	out, err := exec.Command(tshark, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	filters := readLines(t, "testdata/errors.txt")
	if len(filters) < 30 {
		t.Fatalf("only %d filters in testdata/errors.txt, want at least 30", len(filters))
	}
	cacheDir := filepath.Join(root, ".cache", "tshark-dferrors")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	answers := make([]tsharkError, len(filters))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, f := range filters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			answers[i] = tsharkCompile(t, tshark, version, cacheDir, capture, f)
		}()
	}
	wg.Wait()
	compared, same := 0, 0
	for i, f := range filters {
		want := answers[i]
		if want.class == 0 {
			t.Errorf("%q: tshark's message is in no class we know: %q", f, want.msg)
			continue
		}
		_, err := Compile(f)
		if err == nil {
			t.Errorf("%q: compiles; tshark rejects it: %s", f, want.msg)
			continue
		}
		e := err.(*Error)
		compared++
		// tshark names no place for an unexpected end or a regular expression that does not
		// compile; the class alone is compared then.
		ok := e.Class == want.class && (want.pos < 0 || e.Pos == want.pos)
		if reason, known := knownErrorDifferences[f]; known {
			if ok {
				t.Errorf("%q: listed as differing (%s) but now agrees with tshark: remove it from the list", f, reason)
			}
			continue
		}
		if !ok {
			t.Errorf("%q: we say %s at %d (%s); tshark says %s at %d (%s)", f, e.Class, e.Pos, e.Msg, want.class, want.pos, want.msg)
			continue
		}
		same++
	}
	t.Logf("%d of %d rejected filters get tshark's error class and column (%d listed as differing)", same, compared, len(knownErrorDifferences))
}

func readLines(t testing.TB, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "//") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// tsharkCompile runs tshark -Y on a capture and reads its complaint: the message line, and the
// column of the caret under the echoed filter.
func tsharkCompile(t *testing.T, tshark, version, cacheDir, capture, filter string) tsharkError {
	h := sha256.Sum256([]byte(version + "\x00" + filter))
	cache := filepath.Join(cacheDir, hex.EncodeToString(h[:])+".txt")
	stderr, err := os.ReadFile(cache)
	if err != nil {
		cmd := exec.Command(tshark, "-n", "-r", capture, "-c", "1", "-Y", filter)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		if cmd.Run() == nil {
			t.Errorf("tshark accepts %q: it does not belong in testdata/errors.txt", filter)
		}
		stderr = eb.Bytes()
		tmp := fmt.Sprintf("%s.tmp%d", cache, os.Getpid())
		if os.WriteFile(tmp, stderr, 0o644) == nil {
			os.Rename(tmp, cache)
		}
	}
	var te tsharkError
	te.pos = -1
	for _, l := range strings.Split(string(stderr), "\n") {
		if m, ok := strings.CutPrefix(l, "tshark: "); ok && te.msg == "" {
			te.msg = m
		}
		if strings.HasPrefix(l, "    ") && strings.Contains(l, "^") && strings.Trim(l[4:], " ^~") == "" {
			te.pos = strings.IndexByte(l, '^') - 4
		}
	}
	for _, c := range tsharkClasses {
		if c.re.MatchString(te.msg) {
			te.class = c.class
			break
		}
	}
	return te
}
