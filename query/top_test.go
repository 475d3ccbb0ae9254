package query

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// tsharkTalkers sums what tshark dissects of each file, by host or by pair of hosts: packets and the
// IP total length, each way, from the first (outer) IP header of every IPv4 packet.
func tsharkTalkers(t *testing.T, files []string, group string) map[string]Talker {
	t.Helper()
	out := map[string]Talker{}
	for _, f := range files {
		b, err := exec.Command("tshark", "-n", "-r", f, "-o", "ip.defragment:FALSE", "-Y", "ip", "-T", "fields",
			"-E", "occurrence=f", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.len").Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", f, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			fs := strings.Split(line, "\t")
			n, err := strconv.ParseUint(fs[2], 10, 64)
			if len(fs) != 3 || err != nil {
				t.Fatalf("tshark line %q", line)
			}
			add := func(a, b string, out_ bool) {
				k := a + " " + b
				tl := out[k]
				tl.A, tl.B = a, b
				if out_ {
					tl.PacketsOut++
					tl.BytesOut += n
				} else {
					tl.PacketsIn++
					tl.BytesIn += n
				}
				out[k] = tl
			}
			src, dst := fs[0], fs[1]
			switch group {
			case ByHost:
				add(src, "", true)
				if dst != src {
					add(dst, "", false)
				}
			case ByPair:
				if pairOrder(mustAddr(t, dst), mustAddr(t, src)) {
					add(dst, src, false)
				} else {
					add(src, dst, true)
				}
			}
		}
	}
	return out
}

// storedCaptureFlows stores in a new keyspace the flows of three captures, moved to start at base, and
// returns the keyspace, the capture files and the query flags that reach it.
func storedCaptureFlows(t *testing.T, base time.Time) (files, flags []string) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is needed as the oracle: run hack/deps.sh")
	}
	ccfg, ks, s := migratedKeyspace(t)
	ctx := context.Background()
	var flows []store.Flow
	for _, name := range []string{"ftp-bruteforce.pcap", "dns.pcap", "http.pcap"} {
		path := filepath.Join(testenv.Root(t), "testdata", name)
		files = append(files, path)
		frames := pipelinetest.ReadCapture(t, path)
		first, _ := pipelinetest.TimeSpan(frames)
		fs := pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, "top")
		for i := range fs {
			fs[i].Start, fs[i].End = base.Add(fs[i].Start.Sub(first)), base.Add(fs[i].End.Sub(first))
		}
		flows = append(flows, fs...)
	}
	if err := store.NewWriter(s, store.Options{}).WriteFlows(ctx, flows, 0); err != nil {
		t.Fatal(err)
	}
	return files, []string{"--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port),
		"--cassandra-secret-dir", ccfg.SecretDir, "--from", base.Format(time.RFC3339), "--to", base.Add(2 * time.Hour).Format(time.RFC3339)}
}

// query top by host and by pair gives, for the flows of three captures stored in Cassandra, the packets
// and IP bytes each way that tshark counts in the same files.
func TestQueryTopAgreesWithTshark(t *testing.T) {
	files, flags := storedCaptureFlows(t, time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC))
	for _, group := range []string{ByHost, ByPair} {
		want := tsharkTalkers(t, files, group)
		out, err := run(append([]string{"top", "--group", group, "--by", "packets", "-n", "0", "-o", "json"}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(want) {
			t.Errorf("--group %s: %d rows, tshark has %d", group, len(lines), len(want))
		}
		var prev uint64 = 1 << 63
		for _, l := range lines {
			var got struct {
				A, B       string
				Packets    uint64 `json:"packets"`
				PacketsOut uint64 `json:"packets_out"`
				PacketsIn  uint64 `json:"packets_in"`
				BytesOut   uint64 `json:"ip_bytes_out"`
				BytesIn    uint64 `json:"ip_bytes_in"`
			}
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			w, ok := want[got.A+" "+got.B]
			if !ok || got.PacketsOut != w.PacketsOut || got.PacketsIn != w.PacketsIn || got.BytesOut != w.BytesOut || got.BytesIn != w.BytesIn {
				t.Errorf("--group %s: %s, tshark %+v", group, l, w)
			}
			if got.Packets > prev || got.Packets != got.PacketsOut+got.PacketsIn {
				t.Errorf("--group %s: %s out of order or not summed", group, l)
			}
			prev = got.Packets
		}
	}
	if _, err := run(append([]string{"top", "--group", "country"}, flags...)...); err == nil || !strings.Contains(err.Error(), "want host, pair, port or proto") {
		t.Errorf("an unknown grouping: %v", err)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("tshark address %q: %v", s, err)
	}
	return a
}
