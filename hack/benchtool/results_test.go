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

// The end-to-end aim bounds the runs that store packets and flows, holds the mix to the storage ratio
// and reports the one-flow query.
func TestCheckE2E(t *testing.T) {
	r := &results{cases: map[string][]string{}, tools: map[[2]string][]string{},
		metrics: map[[2]string][]string{}, values: map[[4]string][]float64{}}
	for _, l := range []struct {
		sec, k, tool, m string
		v               float64
	}{
		{"e2e", "small-live", e2eTool, "Mpkt/s", 0.35},
		{"e2e", "small-live", e2eTool, "process CPU ns/pkt", 1500},
		{"e2e", "small-live", e2eTool, "Cassandra CPU ns/pkt", 1900},
		{"e2e", "small-live", e2eTool, "stored ÷ pcap", 0.9},
		{"e2e", "mix", e2eMixTool, "Mpkt/s", 0.1},
		{"e2e", "mix", e2eMixTool, "stored ÷ pcap", 0.5},
		{"flow-query", "small-live", "capfleet query packets --flow", "s", 0.4},
	} {
		r.add(l.sec, l.k, l.tool, l.m, l.v)
	}
	lines, met, measured := checkE2E(r)
	text := strings.Join(lines, "\n")
	if !met || !measured {
		t.Fatalf("met %v measured %v:\n%s", met, measured, text)
	}
	for _, want := range []string{"stored and committed, small-live: 350000 packets/s (aim ≥ 300000 packets/s): yes",
		"stored ÷ pcap, mix", "(aim ≤ 0.800): yes", "`query packets --flow`", "small-live (", ": 0.900"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	r.add("e2e", "small", e2eTool, "Mpkt/s", 0.05)
	if _, met, _ := checkE2E(r); met {
		t.Error("the original-timestamp run at 50,000 packets/s met the aim")
	}
}
