package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/processor/block"
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

// blocksOf cuts packets into blocks per Kafka partition, as the pipeline does.
func blocksOf(pkts []store.Packet, lim block.Limits) []store.Block {
	builders := map[int32]*block.Builder{}
	var out []store.Block
	seal := func(part int32, b *block.Builder) {
		out = append(out, store.NewBlock("s1", part, b.Seal(), []uint32{1}))
	}
	for _, p := range pkts {
		b := builders[p.Partition]
		if b == nil {
			b = block.NewBuilder(lim)
			builders[p.Partition] = b
		}
		bp := block.Packet{Offset: p.Offset, Timestamp: p.Timestamp.UnixNano(), OrigLen: p.OrigLen, LinkType: p.LinkType,
			Node: p.Node, Interface: p.Interface, Data: p.Data}
		if b.Full(&bp) {
			seal(p.Partition, b)
		}
		b.Add(&bp, netip.AddrFrom4([4]byte{10, 0, 0, byte(p.Offset % 50)}))
	}
	for part, b := range builders {
		if b.Len() > 0 {
			seal(part, b)
		}
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
			Partition: int32(i % 11), Offset: int64(i), Node: "n", Interface: "eth0", LinkType: 1,
			OrigLen: 1500, Data: frame})
	}
	// Two packets at the same instant: the Kafka position keeps both.
	pkts[12].Timestamp = pkts[11].Timestamp
	blocks := blocksOf(pkts, block.Limits{MaxPackets: 5, MaxBuckets: 1, Bucket: 300 * time.Millisecond})
	// Written in reverse, and twice: order and count must come from the keys.
	rev := make([]store.Block, len(blocks))
	for i := range blocks {
		rev[len(blocks)-1-i] = blocks[i]
	}
	for range 2 {
		if err := w.WriteBlocks(ctx, rev, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer that restarted after a failed commit cut blocks differently: a block starting inside
	// another and running into the next (the second packet of a block and the first of the following
	// block of the same Kafka partition) must not make those records come out twice.
	var overlapPkts []store.Packet
	for _, b := range blocks {
		next := int64(-1)
		for _, c := range blocks {
			if c.Partition == b.Partition && c.FirstOffset > b.FirstOffset && (next < 0 || c.FirstOffset < next) {
				next = c.FirstOffset
			}
		}
		if b.Packets < 2 || next < 0 {
			continue
		}
		for _, p := range pkts {
			if p.Partition == b.Partition && p.Offset > b.FirstOffset && (len(overlapPkts) == 0 || p.Offset == next) {
				overlapPkts = append(overlapPkts, p)
			}
		}
		break
	}
	overlap := blocksOf(overlapPkts, block.Limits{})
	if len(overlapPkts) != 2 || len(overlap) != 1 {
		t.Fatalf("overlap: %d packets in %d blocks", len(overlapPkts), len(overlap))
	}
	if err := w.WriteBlocks(ctx, overlap, time.Hour); err != nil {
		t.Fatal(err)
	}
	other := blocksOf(pkts[:1], block.Limits{})[0]
	other.Sensor = "s2"
	if err := w.WriteBlocks(ctx, []store.Block{other}, 0); err != nil {
		t.Fatal(err)
	}
	var got []store.Packet
	st, err := r.Scan(ctx, store.PacketQuery{Sensor: "s1", From: base, To: base.Add(time.Hour)}, func(p store.Packet) error {
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pkts) {
		t.Fatalf("read %d packets, want %d (%+v)", len(got), len(pkts), st)
	}
	for i := range pkts {
		want := pkts[i]
		if !got[i].Timestamp.Equal(want.Timestamp) || got[i].Offset != want.Offset || !bytes.Equal(got[i].Data, want.Data) ||
			got[i].OrigLen != 1500 || got[i].LinkType != 1 || got[i].Interface != "eth0" || got[i].Partition != want.Partition {
			t.Fatalf("packet %d: got %+v, want %+v", i, got[i], want)
		}
	}
	if st.BlocksRead != len(blocks)+1 || st.Duplicates != 2 {
		t.Fatalf("scan stats %+v, want %d blocks read and the 2 records of the overlapping block counted as duplicates", st, len(blocks)+1)
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
	if err != nil || lts[1] < len(pkts) || len(lts) != 1 {
		t.Fatalf("link types %v %v", lts, err)
	}
	var ttl int
	if err := s.Query("SELECT TTL(data) FROM packet_blocks LIMIT 1").Scan(&ttl); err != nil || ttl <= 3500 || ttl > 3600 {
		t.Fatalf("block TTL %d (%v), want about 3600", ttl, err)
	}
	// One address: only the blocks whose index may hold it are read, and every packet that carries it
	// comes back.
	addr := netip.AddrFrom4([4]byte{10, 0, 0, 7})
	var hits []int64
	st, err = r.Scan(ctx, store.PacketQuery{Sensor: "s1", From: base, To: base.Add(time.Hour), Hosts: []netip.Addr{addr}},
		func(p store.Packet) error { hits = append(hits, p.Offset); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.BlocksRead >= len(blocks)/2 {
		t.Errorf("looking for one address read %d of %d blocks", st.BlocksRead, len(blocks))
	}
	found := map[int64]bool{}
	for _, o := range hits {
		found[o] = true
	}
	for _, o := range []int64{7, 57, 107, 157, 207, 257} {
		if !found[o] {
			t.Errorf("offset %d carries %s but was not returned", o, addr)
		}
	}
}

// A keyspace written before blocks (one row per packet) keeps answering, merged in time order with the
// blocks written since; a corrupt block is reported by its key and skipped.
func TestLegacyRowsAndCorruptBlocks(t *testing.T) {
	_, _, s := newKeyspace(t)
	w, r := store.NewWriter(s, store.Options{}), store.NewReader(s)
	ctx := context.Background()
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	var pkts []store.Packet
	for i := range 40 {
		pkts = append(pkts, store.Packet{Sensor: "s1", Timestamp: base.Add(time.Duration(i) * time.Millisecond), Partition: 0,
			Offset: int64(i), Node: "n", Interface: "eth0", LinkType: 1, OrigLen: 64, Data: []byte{byte(i), 1, 2, 3}})
	}
	// Even packets as rows of schema version 1, odd ones in blocks of partition 1.
	var odd []store.Packet
	for i, p := range pkts {
		if i%2 == 0 {
			if err := s.Query(`INSERT INTO packets (sensor, bucket, shard, ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.Sensor, base, 0, p.Timestamp.UnixNano(), 0, p.Offset, p.Node, p.Interface,
				1, p.OrigLen, p.Data).Exec(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p.Partition = 1
		odd = append(odd, p)
	}
	blocks := blocksOf(odd, block.Limits{MaxPackets: 4})
	bad := blocks[2]
	bad.Data = bytes.Clone(bad.Data)
	bad.Data[len(bad.Data)/2] ^= 0x5a
	blocks[2] = bad
	if err := w.WriteBlocks(ctx, blocks, 0); err != nil {
		t.Fatal(err)
	}
	var skipped []string
	var got []int64
	st, err := r.Scan(ctx, store.PacketQuery{Sensor: "s1", From: base, To: base.Add(time.Minute),
		OnSkip: func(key string, err error) { skipped = append(skipped, key+": "+err.Error()) }},
		func(p store.Packet) error { got = append(got, p.Offset); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || st.BlocksCorrupt != 1 || !bytes.Contains([]byte(skipped[0]), []byte("first_offset=17")) {
		t.Fatalf("skipped %q, stats %+v: want the block at offset 17 reported", skipped, st)
	}
	if st.LegacyRows != 20 || len(got) != 36 {
		t.Fatalf("got %d packets (%d legacy rows), want 20 legacy + 16 from the good blocks: %v", len(got), st.LegacyRows, got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("not in time order: %v", got)
		}
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

// A range of years (a replayed capture's timestamps, or --since 8760h) reads the minutes that hold
// blocks, not every minute in between: the scan ends in a few requests, not millions.
// A replay of old captures jumps across years: the reader must find blocks through the few minutes and
// hours that hold any, whichever level a block was indexed at, without trying every minute between.
func TestScanOverYearsReadsOnlyBucketsWithBlocks(t *testing.T) {
	_, _, s := newKeyspace(t)
	w, r := store.NewWriter(s, store.Options{}), store.NewReader(s)
	ctx := context.Background()
	old := time.Date(2009, 11, 18, 8, 0, 0, 0, time.UTC)
	recent := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	// Partition 0: a block of two minutes (indexed by minute). Partition 1: one whose packets fall in
	// six minutes of an hour and one of the next (indexed by hour).
	var pkts []store.Packet
	add := func(part int32, ts time.Time) {
		pkts = append(pkts, store.Packet{Sensor: "s1", Timestamp: ts, Partition: part, Offset: int64(len(pkts)), Node: "n",
			Interface: "eth0", LinkType: 1, OrigLen: 4, Data: []byte{byte(len(pkts)), 0, 0, 0}})
	}
	add(0, old)
	add(0, old.Add(time.Second))
	add(0, recent)
	for m := range 6 {
		add(1, old.Add(time.Duration(m)*10*time.Minute))
	}
	add(1, old.Add(90*time.Minute))
	blocks := blocksOf(pkts, block.Limits{})
	if len(blocks) != 2 || (blocks[0].Fine == nil) == (blocks[1].Fine == nil) {
		t.Fatalf("want one block listing its minutes and one too spread to, got %d blocks", len(blocks))
	}
	if err := w.WriteBlocks(ctx, blocks, time.Hour); err != nil {
		t.Fatal(err)
	}
	scan := func(from, to time.Time) []int64 {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var got []int64
		st, err := r.Scan(sctx, store.PacketQuery{Sensor: "s1", From: from, To: to},
			func(p store.Packet) error { got = append(got, p.Offset); return nil })
		if err != nil {
			t.Fatalf("scan %v to %v: %v (%+v)", from, to, err, st)
		}
		slices.Sort(got)
		return got
	}
	if got := scan(old.Add(-time.Hour), recent.Add(time.Hour)); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("over 15 years: offsets %v, want 0 to 9", got)
	}
	// Inside the spread block's hour, between two of its packets, and in its second hour.
	if got := scan(old.Add(15*time.Minute), old.Add(35*time.Minute)); !slices.Equal(got, []int64{5, 6}) {
		t.Fatalf("20 minutes of the hour-indexed block: offsets %v, want 5 6", got)
	}
	if got := scan(old.Add(80*time.Minute), old.Add(100*time.Minute)); !slices.Equal(got, []int64{9}) {
		t.Fatalf("its second hour: offsets %v, want 9", got)
	}
}
