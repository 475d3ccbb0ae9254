// Package store keeps packets and flows in Cassandra and reads them back.
//
// Layout (see the migrations below for the CQL, and docs/packet-storage.md for why):
//   - packet_blocks: the packets of one Kafka partition in compressed blocks (package block), one row and
//     partition per block, keyed by (sensor, Kafka partition, first offset).
//   - packet_block_index: per (sensor, minute), a small row for every block active in that minute, with
//     its time range, offsets, link types and address index, so a reader fetches only the blocks that can
//     hold what it looks for.
//   - packet_block_minutes: per sensor, the minutes that hold blocks, so that a long range reads only
//     those.
//   - packet_block_index_hourly and packet_block_hours: the same per hour, for blocks whose packets
//     fall in more than a few minutes (block.Limits.MaxFine), which a minute row each would make
//     expensive to write.
//   - packets (schema version 1, no longer written): one partition per (sensor, minute, shard), the shard being the Kafka partition modulo
//     PacketShards, so that a busy sensor spreads over several replica sets and partitions stay small;
//     rows ordered by capture time in nanoseconds, then by the Kafka partition and offset the packet came
//     from. Those make a deterministic key, so writing the same record twice (a restarted consumer) lands
//     on the same row instead of adding one. Readers merge a minute's shards back into time order.
//   - flows_by_time: one partition per (hour, shard), the shard derived from the flow's uid; a flow is
//     written into every hour it was active in.
//   - flows_by_ip: one partition per (address, hour), written for both endpoints, so "the flows of this IP
//     in this hour" is a single partition read.
//   - flow_checkpoints: the open flows of one Kafka partition at one committed offset, so a restarted
//     consumer resumes its flows where the committed offset says it stood (see package pipeline). The
//     open traffic and edge counters of a partition are checkpointed there too, under the topic
//     "rollups:" + topic (no Kafka topic has a colon in its name).
//   - traffic: per sensor and window (1 s by default), packets, bytes, by IP protocol and direction,
//     and the packets filtered or undecodable, one row per Kafka partition and counter, summed on read.
//   - edge_rollups: per window (1 min by default) and pair of hosts, the packets, IP bytes and flows
//     started, so that the graph of a day reads a few thousand rows instead of every flow.
//   - flow_features: per (hour of its start, shard), the CICFlowMeter columns of each flow of a pipeline
//     that computes them (spec.flows.features), by start and uid, a map by CIC-IDS2017 column name.
//
// The schema is versioned: schema_version records every migration applied; migrations are an ordered list
// and each is applied once. All statements are idempotent (IF NOT EXISTS), so two replicas starting at the
// same time cannot break each other.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// Bucket widths. Changing one is a schema change: it needs new tables and a migration, because readers
// compute the partitions they read from these.
const (
	PacketBucket = time.Minute
	PacketHour   = time.Hour
	FlowBucket   = time.Hour
	PacketShards = 8
	FlowShards   = 8
)

// DefaultReplication suits one local node.
const DefaultReplication = `{"class":"SimpleStrategy","replication_factor":1}`

type migration struct {
	version     int
	description string
	statements  []string
}

// migrations is append-only: a released entry never changes, a later schema adds an entry. "%[1]s" is
// the keyspace.
var migrations = []migration{
	{1, "packets, flows by time and by ip, flow checkpoints", []string{
		`CREATE TABLE IF NOT EXISTS %[1]s.packets (
			sensor text, bucket timestamp, shard int, ts_ns bigint, kafka_partition int, kafka_offset bigint,
			node text, iface text, linktype int, origlen int, frame blob,
			PRIMARY KEY ((sensor, bucket, shard), ts_ns, kafka_partition, kafka_offset)
		) WITH CLUSTERING ORDER BY (ts_ns ASC, kafka_partition ASC, kafka_offset ASC)
		  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}`,
		`CREATE TABLE IF NOT EXISTS %[1]s.flows_by_time (` + flowColumnsDDL + `,
			bucket timestamp, shard int,
			PRIMARY KEY ((bucket, shard), start_ns, uid)
		) WITH CLUSTERING ORDER BY (start_ns ASC, uid ASC)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.flows_by_ip (` + flowColumnsDDL + `,
			ip inet, bucket timestamp,
			PRIMARY KEY ((ip, bucket), start_ns, uid)
		) WITH CLUSTERING ORDER BY (start_ns ASC, uid ASC)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.flow_checkpoints (
			consumer_group text, topic text, kafka_partition int, kafka_offset bigint, chunk int, chunks int, state blob,
			PRIMARY KEY ((consumer_group, topic, kafka_partition), kafka_offset, chunk)
		) WITH CLUSTERING ORDER BY (kafka_offset DESC, chunk ASC)`,
	}},
	{2, "packets in compressed blocks: packet_blocks and their time index", []string{
		// One partition per block: its key is where the block starts in Kafka, so a consumer that
		// repeats work rewrites the row. The body is compressed already; Cassandra's own compression
		// would spend CPU for nothing.
		`CREATE TABLE IF NOT EXISTS %[1]s.packet_blocks (
			sensor text, kafka_partition int, first_offset bigint,
			last_offset bigint, min_ns bigint, max_ns bigint, packets int, raw_bytes int, codec int, data blob,
			PRIMARY KEY ((sensor, kafka_partition, first_offset))
		) WITH compression = {'enabled': 'false'}
		  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}`,
		// A small row per block and minute it touches: what a reader scans to pick the blocks to fetch.
		`CREATE TABLE IF NOT EXISTS %[1]s.packet_block_index` + blockIndexDDL,
		// The minutes of a sensor that hold blocks: a reader asking for a month, or for the years a replayed
		// capture spans, reads the few minutes that exist instead of trying every one in the range.
		`CREATE TABLE IF NOT EXISTS %[1]s.packet_block_minutes` + blockDirectoryDDL,
	}},
	{3, "flows in compressed blocks: flow_blocks, their hour index and the hours holding any", []string{
		`CREATE TABLE IF NOT EXISTS %[1]s.flow_blocks (
			id timeuuid PRIMARY KEY, flows int, codec int, data blob
		) WITH compression = {'enabled': 'false'}`,
		// Per hour, a small row per block active in it: what a reader scans to pick the blocks to fetch.
		`CREATE TABLE IF NOT EXISTS %[1]s.flow_block_index (
			bucket timestamp, id timeuuid, min_ns bigint, max_ns bigint, flows int, addrs blob,
			PRIMARY KEY ((bucket), id)
		)`,
		`CREATE TABLE IF NOT EXISTS %[1]s.flow_block_hours (
			scope int, bucket timestamp,
			PRIMARY KEY ((scope), bucket)
		)`,
	}},
	{4, "packet blocks spread over many minutes indexed by hour: packet_block_index_hourly and packet_block_hours", []string{
		// The rows of packet_block_index, one per hour instead of one per minute, for blocks whose
		// packets fall in more than a few minutes (replays of old captures jump across days): a minute
		// row per block and minute cost Cassandra more than the packets did.
		`CREATE TABLE IF NOT EXISTS %[1]s.packet_block_index_hourly` + blockIndexDDL,
		`CREATE TABLE IF NOT EXISTS %[1]s.packet_block_hours` + blockDirectoryDDL,
	}},
	{5, "traffic over time and per-window edge rollups: traffic and edge_rollups", []string{
		// One row per (window, Kafka partition, counter) of a sensor: the window's packets as one
		// processor counted them from the record at first_offset on. A re-delivery rewrites the same
		// row; a reader sums the rows of a window. One partition per sensor and hour.
		`CREATE TABLE IF NOT EXISTS %[1]s.traffic (
			sensor text, bucket timestamp, start timestamp, step_ms int, kafka_partition int, first_offset bigint,
			packets bigint, bytes bigint,
			proto_packets frozen<map<int, bigint>>, proto_bytes frozen<map<int, bigint>>,
			in_packets bigint, in_bytes bigint, out_packets bigint, out_bytes bigint,
			internal_packets bigint, internal_bytes bigint, filtered bigint, decode_errors bigint,
			PRIMARY KEY ((sensor, bucket), start, step_ms, kafka_partition, first_offset)
		) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}`,
		// Per window, the packets, IP bytes and flows started between two hosts (a < b), of all sensors:
		// what query graph reads for a long range instead of every flow. Partitions are an hour of one
		// shard (the Kafka partition modulo RollupShards), so a reader of a range knows them all.
		`CREATE TABLE IF NOT EXISTS %[1]s.edge_rollups (
			bucket timestamp, shard int, start timestamp, width_ms int, sensor text, a inet, b inet,
			kafka_partition int, first_offset bigint,
			packets bigint, ip_bytes bigint, flows bigint,
			PRIMARY KEY ((bucket, shard), start, width_ms, sensor, a, b, kafka_partition, first_offset)
		) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}`,
	}},
	{6, "CICFlowMeter features of flows: flow_features", []string{
		// A row per flow of a pipeline with spec.flows.features [cic], keyed as flows_by_time (the hour and
		// shard of its start, then start and uid), so a reader joins it to the flows by uid. The columns are
		// a map by CIC-IDS2017 column name: the feature set may grow without a migration. Forward is the
		// direction of the flow's first packet, as in CICFlowMeter, which may not be Zeek's originator.
		`CREATE TABLE IF NOT EXISTS %[1]s.flow_features (
			bucket timestamp, shard int, start_ns bigint, uid text, sensor text,
			src_ip inet, src_port int, dst_ip inet, dst_port int, proto int, closed boolean,
			cic frozen<map<text, double>>,
			PRIMARY KEY ((bucket, shard), start_ns, uid)
		) WITH CLUSTERING ORDER BY (start_ns ASC, uid ASC)`,
	}},
}

// The two levels of the packet block index (by minute and by hour) have the same tables. The text is
// what migration 2 created; a migration that changes them must add its own.
const (
	blockIndexDDL = ` (
			sensor text, bucket timestamp, kafka_partition int, first_offset bigint,
			last_offset bigint, min_ns bigint, max_ns bigint, packets int, stored_bytes int,
			linktypes frozen<set<bigint>>, addrs blob,
			PRIMARY KEY ((sensor, bucket), kafka_partition, first_offset)
		) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}`
	blockDirectoryDDL = ` (
			sensor text, bucket timestamp,
			PRIMARY KEY ((sensor), bucket)
		)`
)

// flowColumnsDDL is shared by both flow tables so a flow row reads the same from either.
const flowColumnsDDL = `
	uid text, community_id text, sensor text, start_ns bigint, end_ns bigint,
	proto int, vlan int, orig_h inet, orig_p int, resp_h inet, resp_p int,
	orig_pkts bigint, resp_pkts bigint, orig_bytes bigint, resp_bytes bigint,
	orig_ip_bytes bigint, resp_ip_bytes bigint, tcp_flags int, history text, conn_state text, closed boolean`

// SchemaVersion is the version Migrate brings a keyspace to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

var keyspaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)

// ValidateKeyspace rejects names CQL would need quoting for; we never quote, so we never accept them.
func ValidateKeyspace(ks string) error {
	if !keyspaceName.MatchString(ks) {
		return fmt.Errorf("keyspace %q: want a letter then up to 47 letters, digits or underscores", ks)
	}
	return nil
}

// replicationCQL turns the JSON replication map of the pipeline spec into a CQL map literal.
func replicationCQL(replication string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(replication), &m); err != nil {
		return "", fmt.Errorf("replication %q: not a JSON object: %w", replication, err)
	}
	if _, ok := m["class"]; !ok {
		return "", fmt.Errorf("replication %q: no \"class\"", replication)
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64:
			s = fmt.Sprint(v)
		default:
			return "", fmt.Errorf("replication %q: value of %q must be a string or a number", replication, k)
		}
		parts = append(parts, fmt.Sprintf("'%s': '%s'", cqlEscape(k), cqlEscape(s)))
	}
	return "{" + strings.Join(parts, ", ") + "}", nil
}

func cqlEscape(s string) string { return strings.ReplaceAll(s, "'", "''") }

// Migrate creates the keyspace if missing and applies every migration not yet recorded in
// schema_version. An existing keyspace keeps its replication: changing that is an operator's decision
// (it needs a repair), not something a starting pod does behind their back.
func Migrate(ctx context.Context, cluster *gocql.ClusterConfig, keyspace, replication string) error {
	if err := ValidateKeyspace(keyspace); err != nil {
		return err
	}
	repl, err := replicationCQL(replication)
	if err != nil {
		return err
	}
	c := *cluster
	c.Keyspace = ""
	// A host selection policy serves one session only (gocql panics otherwise), and schema statements
	// have no partition to route by.
	c.PoolConfig.HostSelectionPolicy = gocql.RoundRobinHostPolicy()
	s, err := c.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: connect to %v: %w", cluster.Hosts, err)
	}
	defer s.Close()
	exec := func(stmt string) error {
		if err := s.Query(stmt).WithContext(ctx).Exec(); err != nil {
			return fmt.Errorf("cassandra: %s: %w", firstLine(stmt), err)
		}
		return s.AwaitSchemaAgreement(ctx)
	}
	if err := exec(fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s`, keyspace, repl)); err != nil {
		return err
	}
	if err := exec(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_version (
		version int PRIMARY KEY, description text, applied_at timestamp)`, keyspace)); err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, s, keyspace)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		for _, stmt := range m.statements {
			if err := exec(fmt.Sprintf(stmt, keyspace)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.description, err)
			}
		}
		if err := s.Query(fmt.Sprintf(`INSERT INTO %s.schema_version (version, description, applied_at) VALUES (?, ?, ?)`, keyspace),
			m.version, m.description, time.Now()).WithContext(ctx).Exec(); err != nil {
			return fmt.Errorf("migration %d: record it: %w", m.version, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, s *gocql.Session, keyspace string) (map[int]bool, error) {
	iter := s.Query(fmt.Sprintf(`SELECT version FROM %s.schema_version`, keyspace)).WithContext(ctx).Iter()
	out := map[int]bool{}
	var v int
	for iter.Scan(&v) {
		out[v] = true
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: read %s.schema_version: %w", keyspace, err)
	}
	return out, nil
}

// AppliedVersion is the highest migration recorded in the keyspace, 0 when none.
func AppliedVersion(ctx context.Context, s *gocql.Session, keyspace string) (int, error) {
	applied, err := appliedVersions(ctx, s, keyspace)
	if err != nil {
		return 0, err
	}
	max := 0
	for v := range applied {
		if v > max {
			max = v
		}
	}
	return max, nil
}

// MigrateAndConnect is what a long-running writer does at start: it creates or upgrades the schema,
// retrying (backing off to 15 s) while Cassandra is still starting, then opens the keyspace session. The
// cluster notices a node back from an outage within seconds, not gocql's default minute.
func MigrateAndConnect(ctx context.Context, cluster *gocql.ClusterConfig, keyspace, replication string, log *slog.Logger) (*gocql.Session, error) {
	cluster.ReconnectInterval = 2 * time.Second
	delay := 500 * time.Millisecond
	for {
		err := Migrate(ctx, cluster, keyspace, replication)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, err
		}
		log.Warn("cassandra schema not ready, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
	return Connect(cluster, keyspace)
}

// Connect opens a session bound to keyspace: batches carry the session keyspace, and token-aware routing
// needs it to find a partition's replicas.
func Connect(cluster *gocql.ClusterConfig, keyspace string) (*gocql.Session, error) {
	if err := ValidateKeyspace(keyspace); err != nil {
		return nil, err
	}
	c := *cluster
	c.Keyspace = keyspace
	// A fresh policy per session: gocql refuses to share a token-aware policy between sessions, and the
	// same cluster configuration may open several (a migration, a writer, a reader).
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	s, err := c.CreateSession()
	if err != nil {
		var reqErr gocql.RequestError
		if errors.As(err, &reqErr) {
			return nil, fmt.Errorf("cassandra: keyspace %s: %w (was the schema created? the process command creates it)", keyspace, err)
		}
		return nil, fmt.Errorf("cassandra: connect to %v: %w", cluster.Hosts, err)
	}
	return s, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(strings.TrimSuffix(s, "("))
}
