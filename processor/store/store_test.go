package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/google/gopacket/layers"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// newKeyspace migrates a fresh keyspace on the Cassandra of hack/cassandra.sh and drops it afterwards.
func newKeyspace(t *testing.T) (*gocql.ClusterConfig, string, *gocql.Session) {
	t.Helper()
	cfg := cassandratest.Config(t)
	cl, err := cfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	ks := cassandratest.NewKeyspace(t, cfg)
	ctx := context.Background()
	if err := store.Migrate(ctx, cl, ks, store.DefaultReplication); err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return cl, ks, s
}

func TestMigrateIsIdempotentAndVersioned(t *testing.T) {
	cl, ks, s := newKeyspace(t)
	if err := store.Migrate(context.Background(), cl, ks, store.DefaultReplication); err != nil {
		t.Fatalf("second migration: %v", err)
	}
	v, err := store.AppliedVersion(context.Background(), s, ks)
	if err != nil {
		t.Fatal(err)
	}
	if v != store.SchemaVersion() {
		t.Fatalf("applied version %d, want %d", v, store.SchemaVersion())
	}
	var n int
	if err := s.Query("SELECT COUNT(*) FROM schema_version").Scan(&n); err != nil || n != len(allVersions()) {
		t.Fatalf("schema_version has %d rows (%v), want one per migration", n, err)
	}
	var repl map[string]string
	if err := s.Query("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", ks).Scan(&repl); err != nil {
		t.Fatal(err)
	}
	if repl["replication_factor"] != "1" || repl["class"] != "org.apache.cassandra.locator.SimpleStrategy" {
		t.Fatalf("replication %v", repl)
	}
}

func allVersions() []int {
	out := []int{}
	for v := 1; v <= store.SchemaVersion(); v++ {
		out = append(out, v)
	}
	return out
}

func TestPacketsRoundTripInOrderWithoutDuplicates(t *testing.T) {
	_, _, s := newKeyspace(t)
	w, r := store.NewWriter(s, store.Options{}), store.NewReader(s)
	ctx := context.Background()
	base := time.Date(2024, 3, 1, 10, 59, 58, 0, time.UTC) // crosses two minute buckets and an hour
	var pkts []store.Packet
	for i := range 300 {
		frame := bytes.Repeat([]byte{byte(i)}, 60+i%7)
		pkts = append(pkts, store.Packet{Sensor: "s1", Timestamp: base.Add(time.Duration(i) * 17 * time.Millisecond),
			Partition: int32(i % 11), Offset: int64(i), Node: "n", Interface: "eth0", LinkType: layers.LinkTypeEthernet,
			OrigLen: 1500, Data: frame})
	}
	// Two packets at the same instant: the Kafka position keeps both. (11 Kafka partitions over 8 shards:
	// reading merges shards, some holding two partitions.)
	pkts[12].Timestamp = pkts[11].Timestamp
	// Written in reverse, and twice: order and count must come from the keys.
	rev := make([]store.Packet, len(pkts))
	for i := range pkts {
		rev[len(pkts)-1-i] = pkts[i]
	}
	for range 2 {
		if err := w.WritePackets(ctx, rev, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	other := pkts[0]
	other.Sensor = "s2"
	if err := w.WritePackets(ctx, []store.Packet{other}, 0); err != nil {
		t.Fatal(err)
	}
	var got []store.Packet
	err := r.Packets(ctx, "s1", base, base.Add(time.Hour), func(p store.Packet) error {
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pkts) {
		t.Fatalf("read %d packets, want %d", len(got), len(pkts))
	}
	for i := range pkts {
		want := pkts[i]
		if !got[i].Timestamp.Equal(want.Timestamp) || got[i].Offset != want.Offset || !bytes.Equal(got[i].Data, want.Data) ||
			got[i].OrigLen != 1500 || got[i].LinkType != layers.LinkTypeEthernet || got[i].Interface != "eth0" {
			t.Fatalf("packet %d: got %+v, want %+v", i, got[i], want)
		}
	}
	// Inclusive ends: exactly the packets in [p10, p20].
	n := 0
	if err := r.Packets(ctx, "s1", pkts[10].Timestamp, pkts[20].Timestamp, func(store.Packet) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Fatalf("range [p10, p20] has %d packets, want 11", n)
	}
	lts, err := r.LinkTypes(ctx, "s1", base, base.Add(time.Hour))
	if err != nil || lts[layers.LinkTypeEthernet] != len(pkts) || len(lts) != 1 {
		t.Fatalf("link types %v %v", lts, err)
	}
	var ttl int
	if err := s.Query("SELECT TTL(frame) FROM packets WHERE sensor = 's1' LIMIT 1 ALLOW FILTERING").Scan(&ttl); err != nil || ttl <= 3500 || ttl > 3600 {
		t.Fatalf("packet TTL %d (%v), want about 3600", ttl, err)
	}
}

// uid names a TCP flow as the pipeline does.
func uid(start time.Time, o netip.Addr, op uint16, r netip.Addr, rp uint16) string {
	f := flow.Flow{Key: flow.Key{Orig: o, Resp: r, OrigPort: op, RespPort: rp, Proto: 6}, First: start}
	return f.UID()
}

func storedFlow(start time.Time, d time.Duration, pkts uint64, closed bool) store.Flow {
	a, b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::20")
	return store.Flow{
		UID:         uid(start, a, 40000, b, 443),
		CommunityID: "1:test", Sensor: "s1", Start: start, End: start.Add(d), Proto: 6,
		OrigAddr: a, OrigPort: 40000, RespAddr: b, RespPort: 443,
		OrigPkts: pkts, RespPkts: pkts, OrigBytes: 100 * pkts, RespBytes: 200 * pkts, OrigIPBytes: 140 * pkts, RespIPBytes: 240 * pkts,
		TCPFlags: 0x1b, History: "ShAD", State: "S1", Closed: closed,
	}
}

func TestFlowsByIPAndTimeNewestVersionWins(t *testing.T) {
	_, _, s := newKeyspace(t)
	w, r := store.NewWriter(s, store.Options{}), store.NewReader(s)
	ctx := context.Background()
	start := time.Date(2024, 3, 1, 10, 50, 0, 0, time.UTC)
	final := storedFlow(start, 20*time.Minute, 10, true) // spans 10:50-11:10
	partial := storedFlow(start, 5*time.Minute, 4, false)
	other := storedFlow(start.Add(2*time.Hour), time.Second, 1, true)
	other.OrigAddr = netip.MustParseAddr("198.51.100.1")
	other.UID = uid(other.Start, other.OrigAddr, 1, other.RespAddr, 2)
	// The newest version first, then an older one (a replay after a restart): it must not win.
	for _, batch := range [][]store.Flow{{final, other}, {partial}} {
		if err := w.WriteFlows(ctx, batch, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, got []store.Flow, err error, want ...store.Flow) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d flows, want %d: %+v", name, len(got), len(want), got)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.UID != w.UID || g.OrigPkts != w.OrigPkts || !g.End.Equal(w.End) || g.Closed != w.Closed ||
				g.OrigAddr != w.OrigAddr || g.RespAddr != w.RespAddr || g.History != w.History || g.RespIPBytes != w.RespIPBytes {
				t.Fatalf("%s: flow %d = %+v, want %+v", name, i, g, w)
			}
		}
	}
	got, err := r.FlowsByIP(ctx, netip.MustParseAddr("192.0.2.10"), start.Add(15*time.Minute), start.Add(16*time.Minute))
	check("by orig ip, second hour only", got, err, final)
	got, err = r.FlowsByIP(ctx, netip.MustParseAddr("2001:db8::20"), start, start.Add(3*time.Hour))
	check("by resp ip, three hours", got, err, final, other)
	got, err = r.FlowsByIP(ctx, netip.MustParseAddr("::ffff:198.51.100.1"), start, start.Add(3*time.Hour))
	check("by v4-mapped ip", got, err, other)
	got, err = r.FlowsBetween(ctx, start.Add(-time.Hour), start.Add(-time.Minute))
	check("before", got, err)
	got, err = r.FlowsBetween(ctx, start, start.Add(3*time.Hour))
	check("all", got, err, final, other)
}

func TestCheckpointsRoundTripInChunks(t *testing.T) {
	_, _, s := newKeyspace(t)
	w, r := store.NewWriter(s, store.Options{}), store.NewReader(s)
	ctx := context.Background()
	big := make([]byte, 2<<20+123)
	rand.Read(big)
	cps := []store.Checkpoint{
		{Group: "g", Topic: "t", Partition: 0, Offset: 100, State: big},
		{Group: "g", Topic: "t", Partition: 1, Offset: 7, State: []byte{}},
	}
	if err := w.WriteCheckpoints(ctx, cps, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		got, found, err := r.Checkpoint(ctx, c.Group, c.Topic, c.Partition, c.Offset)
		if err != nil || !found || !bytes.Equal(got, c.State) {
			t.Fatalf("checkpoint %d@%d: found=%v err=%v len=%d want %d", c.Partition, c.Offset, found, err, len(got), len(c.State))
		}
	}
	if _, found, err := r.Checkpoint(ctx, "g", "t", 0, 99); err != nil || found {
		t.Fatalf("checkpoint at an offset never written: found=%v err=%v", found, err)
	}
	// A checkpoint whose last chunk is missing (a write cut short) is not one.
	if err := s.Query("DELETE FROM flow_checkpoints WHERE consumer_group = 'g' AND topic = 't' AND kafka_partition = 0 AND kafka_offset = 100 AND chunk = 2").Exec(); err != nil {
		t.Fatal(err)
	}
	if _, found, err := r.Checkpoint(ctx, "g", "t", 0, 100); err != nil || found {
		t.Fatalf("incomplete checkpoint: found=%v err=%v", found, err)
	}
}
