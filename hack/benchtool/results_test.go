package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lines `go test -bench -benchmem -count 2` prints become one results line per metric and run.
func TestGobenchParsesEveryMetric(t *testing.T) {
	in := `goos: linux
pkg: capfleet.dev/capfleet/processor/flow
BenchmarkActiveFlowMemory-2   	       1	7979056755 ns/op	       519.4 B/flow	 428079400 B/op	 1008203 allocs/op
BenchmarkActiveFlowMemory-2   	       1	7000000000 ns/op	       500.0 B/flow	 428079400 B/op	 1008203 allocs/op
--- BENCH: BenchmarkX
PASS
`
	var out bytes.Buffer
	if err := gobench(nil, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("got %d lines, want 8 (4 metrics × 2 runs):\n%s", len(lines), out.String())
	}
	if lines[1] != "go\tprocessor/flow\tActiveFlowMemory\tB/flow\t519.4" {
		t.Fatalf("second line %q", lines[1])
	}
}

// Medians of odd and even counts, ranges, and the order tools first appeared in.
func TestResultsMedianAndOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tsv")
	data := "read\tsmall\tcapfleet pcap info\tMB/s\t3\n" +
		"read\tsmall\ttcpdump\tMB/s\t10\n" +
		"read\tsmall\tcapfleet pcap info\tMB/s\t1\n" +
		"read\tsmall\tcapfleet pcap info\tMB/s\t2\n" +
		"read\tsmall\ttcpdump\tMB/s\t20\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := readResults(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.stat("read", "small", "capfleet pcap info", "MB/s")
	if s.med != 2 || s.min != 1 || s.max != 3 || s.String() != "2 (1–3)" {
		t.Fatalf("capfleet: %+v %q", s, s.String())
	}
	s, _ = r.stat("read", "small", "tcpdump", "MB/s")
	if s.med != 15 {
		t.Fatalf("tcpdump median %v, want 15", s.med)
	}
	if got := r.capfleetTool("read", "small"); got != "capfleet pcap info" {
		t.Fatalf("capfleet tool %q", got)
	}
	if v, ok := ratio(r, "read", "small", "tcpdump"); !ok || v != 2.0/15 {
		t.Fatalf("ratio %v %v", v, ok)
	}
}

func TestReadResultsRejectsBadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tsv")
	os.WriteFile(path, []byte("read\tsmall\tx\tMB/s\tfast\n"), 0o644)
	if _, err := readResults(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("error %v, want one naming line 1", err)
	}
}
