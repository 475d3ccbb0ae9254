package pcaptool

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pcapsDir finds ../shared/pcaps next to the repository root (the directory holding go.mod). CI provides it;
// a developer without it gets a skip, CI a failure.
func pcapsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	pcaps := filepath.Join(dir, "..", "shared", "pcaps")
	if _, err := os.Stat(filepath.Join(pcaps, "MANIFEST.tsv")); err != nil {
		missing(t, fmt.Sprintf("the shared captures are missing (%v): they belong at ../shared/pcaps relative to the repository root", err))
	}
	return pcaps
}

func tcpdumpPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tcpdump")
	if err != nil {
		missing(t, "tcpdump is not installed: run bash hack/deps.sh")
	}
	return p
}

func missing(t *testing.T, msg string) {
	t.Helper()
	testenv.Missing(t, "%s", msg)
}

// captureFiles lists every capture under dir (by extension, so the READMEs, licences and logs beside them
// are left out), relative to dir.
func captureFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(d.Name(), ".gz")
		if d.Type().IsRegular() && (strings.HasSuffix(name, ".pcap") || strings.HasSuffix(name, ".pcapng") || strings.HasSuffix(name, ".cap")) {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2000 {
		t.Fatalf("found only %d capture files under %s; the shared corpus has over 2000", len(files), dir)
	}
	return files
}

// tcpdumpInput opens a capture for tcpdump's standard input; libpcap 1.10 cannot read gzip itself, so
// compressed files are inflated here.
func tcpdumpInput(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, func() { f.Close() }, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return zr, func() { zr.Close(); f.Close() }, nil
}

type tcpdumpResult struct {
	packets int64
	err     string // tcpdump's complaint when it exits non-zero
	stdout  []byte
}

func runTcpdump(t *testing.T, tcpdump, path string, args ...string) tcpdumpResult {
	t.Helper()
	in, done, err := tcpdumpInput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	cmd := exec.Command(tcpdump, append([]string{"-r", "-"}, args...)...)
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res tcpdumpResult
	res.stdout = stdout.Bytes()
	if runErr != nil {
		var exit *exec.ExitError
		if !errors.As(runErr, &exit) {
			t.Fatalf("tcpdump: %v", runErr)
		}
		res.err = tcpdumpComplaint(stderr.String())
	}
	return res
}

// tcpdumpComplaint keeps the "tcpdump: ..." lines, dropping the "reading from file" banner and warnings.
func tcpdumpComplaint(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "tcpdump: ") {
			lines = append(lines, strings.TrimPrefix(l, "tcpdump: "))
		}
	}
	if len(lines) == 0 {
		return "exit status non-zero"
	}
	return strings.Join(lines, "; ")
}

var countLine = regexp.MustCompile(`(?m)^(\d+) packets?$`)

func tcpdumpCount(t *testing.T, tcpdump, path string) tcpdumpResult {
	t.Helper()
	res := runTcpdump(t, tcpdump, path, "--count")
	m := countLine.FindSubmatch(res.stdout)
	if m == nil {
		if res.err == "" {
			t.Fatalf("tcpdump --count printed no count: %q", res.stdout)
		}
		return res // refused the file at open: no packets
	}
	res.packets, _ = strconv.ParseInt(string(m[1]), 10, 64)
	return res
}

// TestInfoCountsMatchTcpdump is the reader's acceptance test: for every file in the shared corpus that
// tcpdump reads, `pcap info` counts the same packets and reports no error. Where tcpdump gives up, we
// must deliver at least what it did, and any error of ours must name a byte offset; those files and
// what each side does are kept in testdata/tcpdump-errors.tsv, so a change in either shows up here.
func TestInfoCountsMatchTcpdump(t *testing.T) {
	dir := pcapsDir(t)
	tcpdump := tcpdumpPath(t)
	var table strings.Builder
	table.WriteString("file\ttcpdump_packets\ttcpdump_error\tour_packets\tour_error\n")
	for _, rel := range captureFiles(t, dir) {
		path := filepath.Join(dir, rel)
		td := tcpdumpCount(t, tcpdump, path)
		ours := Info(path)
		if td.err == "" {
			if ours.Packets != td.packets || ours.Error != "" {
				t.Errorf("%s: tcpdump reads %d packets; we read %d (error %q)", rel, td.packets, ours.Packets, ours.Error)
			}
			continue
		}
		if ours.Packets < td.packets {
			t.Errorf("%s: tcpdump read %d packets before failing (%s); we read only %d (error %q)", rel, td.packets, td.err, ours.Packets, ours.Error)
		}
		if ours.Error != "" && ours.ErrorOffset == nil {
			t.Errorf("%s: our error names no offset: %s", rel, ours.Error)
		}
		fmt.Fprintf(&table, "%s\t%d\t%s\t%d\t%s\n", rel, td.packets, td.err, ours.Packets, ours.Error)
	}
	compareGolden(t, "testdata/tcpdump-errors.tsv", table.String())
}

// compareGolden checks got against a file kept in testdata; UPDATE_GOLDEN=1 rewrites the file instead.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (UPDATE_GOLDEN=1 go test writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from what we saw now:\n%s", path, got)
	}
}

var timestampLine = regexp.MustCompile(`(?m)^(\d+)\.(\d+) `)

// TestInfoTimestampsMatchTcpdump compares the first and last timestamp, to the nanosecond, with what
// `tcpdump -tt` prints, on the files that exercise timestamp handling: nanosecond pcap, pcapng in
// both byte orders, and pcapng with if_tsresol.
func TestInfoTimestampsMatchTcpdump(t *testing.T) {
	dir := pcapsDir(t)
	tcpdump := tcpdumpPath(t)
	files := []string{
		"gopacket/pcap/test_dns.pcap",
		"gopacket/pcapgo/tests/be/test010.pcapng",
		"gopacket/pcapgo/tests/le/test010.pcapng",
		"gopacket/pcapgo/tests/be/test016.pcapng",
		"gopacket/pcapgo/tests/le/test016.pcapng",
	}
	for _, rel := range captureFiles(t, dir) {
		if strings.HasPrefix(rel, "tcpdump/") && (strings.Contains(rel, "nano") || strings.Contains(rel, "time") || strings.HasSuffix(rel, ".pcapng")) {
			files = append(files, rel)
		}
	}
	for _, rel := range files {
		path := filepath.Join(dir, rel)
		ours := Info(path)
		// tcpdump prints at the precision it is asked for, converting what the file holds; asking for
		// the file's own precision keeps that conversion (which overflows on invalid fractions) out.
		args, unit := []string{"-tt", "-nn", "-q"}, int64(time.Microsecond)
		if ours.Format != "pcap" {
			args, unit = append(args, "--nano"), 1
		}
		td := runTcpdump(t, tcpdump, path, args...)
		if td.err != "" {
			continue
		}
		if bytes.Contains(td.stdout, []byte("[Error converting time]")) {
			t.Logf("%s: tcpdump cannot print these timestamps (%s)", rel, ours.First)
			continue
		}
		stamps := timestampLine.FindAllSubmatch(td.stdout, -1)
		if len(stamps) == 0 {
			if ours.First != nil {
				t.Errorf("%s: tcpdump prints no packets; we have a first timestamp %v", rel, ours.First)
			}
			continue
		}
		if ours.First == nil {
			t.Errorf("%s: no timestamps from us, tcpdump has %d packets", rel, len(stamps))
			continue
		}
		for _, c := range []struct {
			name string
			m    [][]byte
			got  time.Time
		}{{"first", stamps[0], *ours.First}, {"last", stamps[len(stamps)-1], *ours.Last}} {
			// tcpdump prints the fraction as stored, even when it is a second or more.
			sec, _ := strconv.ParseInt(string(c.m[1]), 10, 64)
			frac, _ := strconv.ParseInt(string(c.m[2]), 10, 64)
			want := time.Unix(sec, frac*unit)
			if c.got.Unix() >= 1<<32 {
				// tcpdump 4.99 keeps seconds in 32 bits, so past 2106 it prints them modulo 2^32.
				want = want.Add(time.Duration(c.got.Unix()>>32<<32) * time.Second)
			}
			if !c.got.Equal(want) {
				t.Errorf("%s: %s timestamp %s, tcpdump says %s.%s", rel, c.name, c.got.Format(time.RFC3339Nano), c.m[1], c.m[2])
			}
		}
	}
	if len(files) < 20 {
		t.Errorf("only %d files checked", len(files))
	}
}
