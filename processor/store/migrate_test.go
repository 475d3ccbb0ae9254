package store

import (
	"bytes"
	"context"
	"fmt"
	"github.com/gocql/gocql"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
)

// keyspaceAt is a fresh keyspace migrated to the first n schema versions (all when n is 0), with its
// cluster settings and a session the test's cleanup closes.
func keyspaceAt(t *testing.T, n int) (*gocql.ClusterConfig, string, *gocql.Session) {
	t.Helper()
	cfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, cfg)
	cl, err := cfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	saved := migrations
	if n > 0 {
		migrations = saved[:n]
	}
	err = Migrate(context.Background(), cl, ks, DefaultReplication)
	migrations = saved
	if err != nil {
		t.Fatal(err)
	}
	s, err := Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return cl, ks, s
}

// A later schema is one more entry in the migrations list: Migrate applies it, once, to a keyspace at
// the previous version, and leaves the data of the earlier tables alone.
func TestMigrateAppliesALaterMigrationOnce(t *testing.T) {
	cl, ks, s := keyspaceAt(t, 0)
	ctx := context.Background()
	if err := s.Query(`INSERT INTO flow_checkpoints (consumer_group, topic, kafka_partition, kafka_offset, chunk, chunks, state)
		VALUES ('g', 't', 0, 1, 0, 1, 0x01)`).Exec(); err != nil {
		t.Fatal(err)
	}

	saved := migrations
	defer func() { migrations = saved }()
	next := SchemaVersion() + 1
	// Not idempotent on purpose: a second application would fail ("column already exists").
	migrations = append(append([]migration{}, saved...), migration{next, "test: a column added later",
		[]string{`ALTER TABLE %[1]s.flow_checkpoints ADD note text`}})
	for range 2 {
		if err := Migrate(ctx, cl, ks, DefaultReplication); err != nil {
			t.Fatalf("migrating to version %d: %v", next, err)
		}
	}
	v, err := AppliedVersion(ctx, s, ks)
	if err != nil || v != next {
		t.Fatalf("applied version %d (%v), want %d", v, err, next)
	}
	var note *string
	var state []byte
	if err := s.Query(`SELECT note, state FROM flow_checkpoints WHERE consumer_group = 'g' AND topic = 't' AND kafka_partition = 0`).Scan(&note, &state); err != nil {
		t.Fatalf("the new column is not there: %v", err)
	}
	if note != nil || len(state) != 1 {
		t.Fatalf("existing row changed: note %v state %x", note, state)
	}
}

// A keyspace still at schema version 1 (a query upgraded before the processors that migrate it) is read
// as it is: its packet rows come back, and the missing block tables mean no blocks, not an error.
func TestScanReadsAKeyspaceOfSchemaVersion1(t *testing.T) {
	_, _, s := keyspaceAt(t, 1)
	ts := time.Date(2024, 3, 1, 10, 0, 1, 0, time.UTC)
	if err := s.Query(`INSERT INTO packets (sensor, bucket, shard, ts_ns, kafka_partition, kafka_offset, node, iface, linktype, origlen, frame)
		VALUES ('s', ?, 0, ?, 0, 7, 'n', 'eth0', 1, 4, 0x01020304)`, bucketOf(ts, PacketBucket), ts.UnixNano()).Exec(); err != nil {
		t.Fatal(err)
	}
	var got []Packet
	st, err := NewReader(s).Scan(context.Background(), PacketQuery{Sensor: "s", From: ts.Add(-time.Minute), To: ts.Add(time.Minute)},
		func(p Packet) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatalf("scan of a version-1 keyspace: %v", err)
	}
	if len(got) != 1 || got[0].Offset != 7 || st.LegacyRows != 1 || !bytes.Equal(got[0].Data, []byte{1, 2, 3, 4}) {
		t.Fatalf("got %+v (%+v), want the one packet row", got, st)
	}
}

// Flow rows of a keyspace written before flow blocks read on their own, then together with blocks once
// the keyspace is migrated: each flow once, its newest version whichever layout holds it.
func TestFlowRowsOfSchemaVersion2ReadWithBlocks(t *testing.T) {
	cl, ks, s := keyspaceAt(t, 2)
	ctx := context.Background()
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	open := Flow{UID: "Cold", Start: start, End: start.Add(time.Minute), Proto: 6, OrigAddr: a, OrigPort: 1, RespAddr: b, RespPort: 2, OrigPkts: 3}
	w := NewWriter(s, Options{})
	if err := w.writeFlowRows(ctx, []Flow{open}, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := NewReader(s).FlowsBetween(ctx, start, start.Add(time.Hour))
	if err != nil || len(got) != 1 || got[0].OrigPkts != 3 {
		t.Fatalf("version-2 keyspace: %+v, %v; want the one flow row", got, err)
	}

	if err := Migrate(ctx, cl, ks, DefaultReplication); err != nil {
		t.Fatal(err)
	}
	closed := open
	closed.End, closed.OrigPkts, closed.Closed = start.Add(2*time.Minute), 5, true
	other := Flow{UID: "Cnew", Start: start.Add(time.Minute), End: start.Add(time.Minute), Proto: 17, OrigAddr: c, OrigPort: 53, RespAddr: b, RespPort: 53, OrigPkts: 1, Closed: true}
	if err := w.WriteFlows(ctx, []Flow{closed, other}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r := NewReader(s)
	got, err = r.FlowsBetween(ctx, start, start.Add(time.Hour))
	if err != nil || len(got) != 2 || got[0].UID != "Cold" || got[0].OrigPkts != 5 || !got[0].Closed || got[1].UID != "Cnew" {
		t.Fatalf("rows and blocks: %+v, %v; want Cold with 5 packets, closed, then Cnew", got, err)
	}
	got, err = r.FlowsByIP(ctx, c, start, start.Add(time.Hour))
	if err != nil || len(got) != 1 || got[0].UID != "Cnew" {
		t.Fatalf("by ip %s: %+v, %v; want Cnew only", c, got, err)
	}
}

// A damaged flow block is reported with its key and skipped when the reader asks for that; otherwise
// it fails the read with its key. The other blocks are read either way.
func TestCorruptFlowBlockIsReportedAndSkipped(t *testing.T) {
	_, _, s := keyspaceAt(t, 0)
	ctx := context.Background()
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	w := NewWriter(s, Options{})
	for i, hour := range []time.Duration{0, time.Hour} { // two blocks: one per hour of the starts
		f := Flow{UID: fmt.Sprintf("C%d", i), Start: start.Add(hour), End: start.Add(hour), Proto: 6, OrigAddr: a, RespAddr: b, OrigPkts: 1, Closed: true}
		if err := w.WriteFlows(ctx, []Flow{f}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var id gocql.UUID
	if err := s.Query(`SELECT id FROM flow_block_index WHERE bucket = ?`, start).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := s.Query(`UPDATE flow_blocks SET data = 0x28b52ffd00 WHERE id = ?`, id).Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewReader(s).FlowsBetween(ctx, start, start.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), id.String()) {
		t.Fatalf("read over a corrupt block: %v; want an error naming %s", err, id)
	}
	r := NewReader(s)
	var skipped []string
	r.OnSkip = func(key string, err error) { skipped = append(skipped, key) }
	got, err := r.FlowsBetween(ctx, start, start.Add(2*time.Hour))
	if err != nil || len(got) != 1 || got[0].UID != "C1" || len(skipped) != 1 || !strings.Contains(skipped[0], id.String()) {
		t.Fatalf("got %+v, %v, skipped %q; want C1 and the corrupt block reported", got, err, skipped)
	}
}

// The flow block decoder never panics and never loops on any input; the flows it reads survive being
// written and read again.
func FuzzFlowBlock(f *testing.F) {
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	body := []byte(flowBlockMagic)
	for _, fl := range []Flow{
		{UID: "CxYz", CommunityID: "1:abc=", Sensor: "s", Start: start, End: start.Add(time.Second), Proto: 6, TCPFlags: 0x12,
			OrigAddr: netip.MustParseAddr("192.0.2.1"), OrigPort: 1234, RespAddr: netip.MustParseAddr("2001:db8::1"), RespPort: 80,
			OrigPkts: 3, RespPkts: 2, OrigBytes: 100, RespBytes: 2000, OrigIPBytes: 160, RespIPBytes: 2040, History: "ShAD", State: "S1"},
		{UID: "C2", Start: start, End: start, Proto: 1, OrigAddr: netip.MustParseAddr("10.0.0.1"), Closed: true},
	} {
		body = appendFlow(body, &fl)
	}
	f.Add(body)
	f.Add(body[:len(body)-3])
	f.Add([]byte(flowBlockMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var flows, again []Flow
		if err := eachFlow(data, func(fl Flow) { flows = append(flows, fl) }); err != nil {
			return
		}
		re := []byte(flowBlockMagic)
		for _, fl := range flows {
			re = appendFlow(re, &fl)
		}
		if err := eachFlow(re, func(fl Flow) { again = append(again, fl) }); err != nil || !reflect.DeepEqual(again, flows) {
			t.Fatalf("flows do not survive re-encoding (%v):\n%+v\n%+v", err, flows, again)
		}
	})
}
