package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
)

// A later schema is one more entry in the migrations list: Migrate applies it, once, to a keyspace at
// the previous version, and leaves the data of the earlier tables alone.
func TestMigrateAppliesALaterMigrationOnce(t *testing.T) {
	cfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, cfg)
	cl, err := cfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Migrate(ctx, cl, ks, DefaultReplication); err != nil {
		t.Fatal(err)
	}
	s, err := Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	cfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, cfg)
	cl, err := cfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	saved := migrations
	migrations = saved[:1]
	err = Migrate(context.Background(), cl, ks, DefaultReplication)
	migrations = saved
	if err != nil {
		t.Fatal(err)
	}
	s, err := Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
