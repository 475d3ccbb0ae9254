package query

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// query flows -Y keeps the stored flows that the same condition, written out in Go over the
// flow's fields, keeps: flows of two real captures, each filter checked to select some flows and
// not all.
func TestQueryFlowsDisplayFilter(t *testing.T) {
	ccfg, ks, s := migratedKeyspace(t)
	ctx := context.Background()
	// The captures are years apart; their flows are moved into one hour (durations kept) so that one
	// query reads a few hourly partitions.
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	var flows []store.Flow
	for _, name := range []string{"ftp-bruteforce.pcap", "dns.pcap", "http.pcap"} {
		frames := pipelinetest.ReadCapture(t, filepath.Join(testenv.Root(t), "testdata", name))
		first, _ := pipelinetest.TimeSpan(frames)
		fs := pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, "q")
		for i := range fs {
			fs[i].Start, fs[i].End = base.Add(fs[i].Start.Sub(first)), base.Add(fs[i].End.Sub(first))
		}
		flows = append(flows, fs...)
	}
	if err := store.NewWriter(s, store.Options{}).WriteFlows(ctx, flows, 0); err != nil {
		t.Fatal(err)
	}
	ten, lan := netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")
	history := regexp.MustCompile(`(?i)^s.*f`)
	for _, c := range []struct {
		filter string
		want   func(f *store.Flow) bool
	}{
		{"flow.duration > 0.5 && flow.orig_bytes > 1e1", func(f *store.Flow) bool {
			return f.End.Sub(f.Start) > 500*time.Millisecond && f.OrigBytes > 10
		}},
		{`conn_state == "SF"`, func(f *store.Flow) bool { return f.State == "SF" }},
		{`conn_state != "SF" && proto == "udp"`, func(f *store.Flow) bool { return f.State != "SF" && f.Proto == 17 }},
		{`history contains "Daf" || flow.ts < 1714557600.3`, func(f *store.Flow) bool {
			return strings.Contains(f.History, "Daf") || f.Start.Before(base.Add(300*time.Millisecond))
		}},
		{"!(flow.addr == 192.168.0.0/16) && flow.port != 53", func(f *store.Flow) bool {
			return !lan.Contains(f.OrigAddr) && !lan.Contains(f.RespAddr) && f.OrigPort != 53 && f.RespPort != 53
		}},
		{"flow.addr == 10.0.0.0/8 || id.orig_p < 1024", func(f *store.Flow) bool {
			return ten.Contains(f.OrigAddr) || ten.Contains(f.RespAddr) || f.OrigPort < 1024
		}},
		{`history matches "^s.*f"`, func(f *store.Flow) bool { return history.MatchString(f.History) }},
		{"id.resp_p in {21, 53} and flow.pkts >= 4", func(f *store.Flow) bool {
			return (f.RespPort == 21 || f.RespPort == 53) && f.OrigPkts+f.RespPkts >= 4
		}},
		{"resp_ip_bytes > orig_ip_bytes && ip_proto == 6", func(f *store.Flow) bool { return f.RespIPBytes > f.OrigIPBytes && f.Proto == 6 }},
	} {
		var want []string
		for i := range flows {
			if c.want(&flows[i]) {
				want = append(want, flows[i].UID)
			}
		}
		if len(want) == 0 || len(want) == len(flows) {
			t.Fatalf("%q: keeps %d of %d flows: pick a filter that selects", c.filter, len(want), len(flows))
		}
		out, err := run("flows", "-o", "json", "-Y", c.filter, "--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","),
			"--cassandra-port", strconv.Itoa(ccfg.Port), "--cassandra-secret-dir", ccfg.SecretDir,
			"--from", "2024-05-01T10:00:00Z", "--to", "2024-05-01T11:00:00Z")
		if err != nil {
			t.Fatalf("-Y %q: %v", c.filter, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var rec flow.Record
			if l == "" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			got = append(got, rec.UID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("-Y %q: flows %v, want %v", c.filter, got, want)
		}
	}
	if _, err := run("flows", "-Y", "flow.bytes > ", "--keyspace", ks); err == nil || !strings.Contains(err.Error(), "end of filter") {
		t.Errorf("a filter cut short: %v", err)
	}
	if _, err := run("flows", "-Y", "flow.color == 1", "--keyspace", ks); err == nil || !strings.Contains(err.Error(), "column 1") {
		t.Errorf("an unknown flow field: %v", err)
	}
}
