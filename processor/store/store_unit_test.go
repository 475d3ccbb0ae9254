package store

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestBucketOfAlignsOnTheEpochGrid(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		w    time.Duration
		want time.Time
	}{
		{time.Date(2024, 3, 1, 10, 59, 59, 999999999, time.UTC), time.Hour, time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)},
		{time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC), time.Hour, time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC)},
		{time.Date(2024, 3, 1, 10, 7, 30, 0, time.FixedZone("x", 3600*5+1800)), time.Minute, time.Date(2024, 3, 1, 4, 37, 0, 0, time.UTC)},
		{time.Unix(-1, 0), time.Minute, time.Unix(-60, 0).UTC()},
	} {
		if got := bucketOf(tc.in, tc.w); !got.Equal(tc.want) {
			t.Errorf("bucketOf(%s, %s) = %s, want %s", tc.in, tc.w, got, tc.want)
		}
	}
}

func TestBucketsBetweenCoversBothEnds(t *testing.T) {
	from := time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC)
	got := bucketsBetween(from, from.Add(2*time.Hour), time.Hour)
	if len(got) != 3 || got[0].Hour() != 10 || got[2].Hour() != 12 {
		t.Fatalf("buckets = %v, want 10:00, 11:00, 12:00", got)
	}
	if got := bucketsBetween(from, from, time.Hour); len(got) != 1 {
		t.Fatalf("a single instant spans %d buckets, want 1", len(got))
	}
}

func TestReplicationCQL(t *testing.T) {
	got, err := replicationCQL(DefaultReplication)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "'class': 'SimpleStrategy'") || !strings.Contains(got, "'replication_factor': '1'") {
		t.Errorf("replicationCQL = %s", got)
	}
	for _, bad := range []string{"", "SimpleStrategy", `{"replication_factor":1}`, `{"class":["x"]}`} {
		if _, err := replicationCQL(bad); err == nil {
			t.Errorf("replicationCQL(%q) accepted", bad)
		}
	}
	got, err = replicationCQL(`{"class":"NetworkTopologyStrategy","dc'1":3}`)
	if err != nil || !strings.Contains(got, "'dc''1': '3'") {
		t.Errorf("quote not escaped: %s %v", got, err)
	}
}

func TestValidateKeyspace(t *testing.T) {
	for _, ok := range []string{"capfleet", "k_1", "A"} {
		if err := ValidateKeyspace(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1k", "ks;DROP", "k-s", strings.Repeat("k", 49)} {
		if err := ValidateKeyspace(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBatchesSplitByPartitionAndSize(t *testing.T) {
	w := NewWriter(nil, Options{MaxBatchStatements: 3, MaxBatchBytes: 100})
	var stmts []statement
	for i := range 7 {
		stmts = append(stmts, statement{partition: "a", size: 10, args: []any{i}})
	}
	stmts = append(stmts, statement{partition: "b", size: 60}, statement{partition: "b", size: 60}, statement{partition: "a", size: 10})
	got := w.batches(stmts)
	var sizes []int
	for _, b := range got {
		for _, s := range b[1:] {
			if s.partition != b[0].partition {
				t.Fatalf("batch mixes partitions %q and %q", b[0].partition, s.partition)
			}
		}
		sizes = append(sizes, len(b))
	}
	want := []int{3, 3, 2, 1, 1} // a: 8 statements by 3; b: 60+60 > 100
	if len(sizes) != len(want) {
		t.Fatalf("batch sizes %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("batch sizes %v, want %v", sizes, want)
		}
	}
}

func TestFlowJSONUsesZeekNames(t *testing.T) {
	f := Flow{UID: "Cx", Start: time.Unix(10, 500000000), End: time.Unix(12, 0), Proto: 17,
		OrigAddr: netip.MustParseAddr("192.0.2.1"), OrigPort: 53, RespAddr: netip.MustParseAddr("2001:db8::1"), RespPort: 5353,
		OrigPkts: 2, OrigBytes: 100, OrigIPBytes: 156}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"ts": 10.5, "id.orig_h": "192.0.2.1", "id.resp_p": 5353.0, "proto": "udp",
		"duration": 1.5, "orig_pkts": 2.0, "orig_ip_bytes": 156.0} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v (%s)", k, m[k], want, b)
		}
	}
}

// A write whose context has ended must leave every concurrency slot free, whichever way its select went:
// slots kept by cancelled writes would, after a few rebalances during an outage, stall every later write.
func TestCancelledWritesReleaseTheirSlots(t *testing.T) {
	w := NewWriter(nil, Options{Concurrency: 2})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stmts := []statement{{partition: "a", cql: "x"}, {partition: "b", cql: "y"}, {partition: "c", cql: "z"}}
	for range 200 {
		if err := w.exec(ctx, stmts); err == nil {
			t.Fatal("a cancelled write reported success")
		}
	}
	if n := len(w.sem); n != 0 {
		t.Fatalf("%d of 2 slots still held after cancelled writes", n)
	}
}
