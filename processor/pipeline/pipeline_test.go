package pipeline_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

func init() {
	// gocql logs every failed reconnection through the proxy: the test's own messages say what matters.
	gocql.Logger = stdlog.New(io.Discard, "", 0)
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// A capture flows through the real Kafka into the real Cassandra while Cassandra disappears for a
// while (a proxy in front of it is cut): nothing is committed that was not stored, the pipeline keeps
// retrying, and once Cassandra is back it catches up to exactly the expected packets and flows. Records
// no decoder understands are counted on the way, never fatal.
func TestCassandraOutageCommitsNothingUnstoredAndCatchesUp(t *testing.T) {
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	direct, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, direct, ks, store.DefaultReplication); err != nil {
		t.Fatal(err)
	}
	directSession, err := store.Connect(direct, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer directSession.Close()

	// The pipeline reaches Cassandra only through the proxy, discovered peers included.
	proxy := pipelinetest.NewProxy(t, net.JoinHostPort(ccfg.Hosts[0], strconv.Itoa(ccfg.Port)))
	viaProxy, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	viaProxy.Hosts, viaProxy.Port = []string{"127.0.0.1"}, proxy.Port()
	viaProxy.AddressTranslator = gocql.AddressTranslatorFunc(func(net.IP, int) (net.IP, int) {
		return net.IPv4(127, 0, 0, 1), proxy.Port()
	})
	viaProxy.ReconnectInterval = time.Second
	session, err := store.Connect(viaProxy, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	frames := pipelinetest.ReadCapture(t, pipelinetest.SharedPcap(t, "ndpi/ethereum.pcap"))
	half := len(frames) / 2
	topic := kafkatest.NewTopic(t, kcfg, 3)
	group := uniqueName("outage-")
	kopts, err := kcfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	producer, err := kgo.NewClient(append(kopts, kgo.RecordPartitioner(packetrecord.Partitioner()), kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	pipelinetest.ProduceRecords(t, producer, pipelinetest.RecordsOf(frames[:half])...)
	// A record that is not a packet record, and a frame of a link type no decoder knows.
	junkTS := frames[half-1].Meta.Timestamp
	unknownLink := packetrecord.Encode(packetrecord.Meta{Timestamp: junkTS, Node: "node-a", Interface: "eth0",
		LinkType: 147, OrigLen: 4}, []byte{0xde, 0xad, 0xbe, 0xef})
	pipelinetest.ProduceRecords(t, producer, &kgo.Record{Key: []byte{1, 2, 3}, Value: []byte("not a packet")}, unknownLink)

	counters := &pipeline.Counters{}
	fcfg := pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: 30 * time.Minute, MaxFlows: 100000}
	pipe, err := pipeline.New(pipeline.Config{
		Topic: topic, Group: group, Sensor: "s1", StorePackets: true, StoreFlows: true,
		PacketTTL: time.Hour, FlowTTL: time.Hour, CommitInterval: 200 * time.Millisecond, MaxPollRecords: 100,
	}, pipeline.Deps{
		Kafka:  kopts,
		Writer: store.NewWriter(session, store.Options{RetryMax: time.Second, OnRetry: func(error) { counters.Retries.Add(1) }}),
		Reader: store.NewReader(session), NewFlowTable: pipeline.NewFlowTableFactory(fcfg, counters),
		Counters: counters, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()

	committedAll := func() (bool, string) {
		c, end, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		if err != nil {
			return false, err.Error()
		}
		return c == end, "committed " + strconv.FormatInt(c, 10) + " of " + strconv.FormatInt(end, 10)
	}
	pipelinetest.Eventually(t, 3*time.Minute, "first half committed", committedAll)
	before, _, err := pipelinetest.Committed(ctx, kcfg, group, topic)
	if err != nil {
		t.Fatal(err)
	}

	// A pause the expected flows can say: the caught-up partition's clock follows the wall clock while it
	// waits, so connections closed before it (Zeek's 5 s close delay) end during it, whatever the load.
	time.Sleep(pauseBetweenHalves)
	proxy.Down()
	retriesBefore := counters.Retries.Load()
	pipelinetest.ProduceRecords(t, producer, pipelinetest.RecordsOf(frames[half:])...)
	// The pipeline takes a poll of the second half, cannot store it, and keeps retrying: it takes no
	// more records meanwhile, since it never commits past what it could not store.
	pipelinetest.Eventually(t, 3*time.Minute, "second half reached and its writes retried", func() (bool, string) {
		in, r := counters.RecordsIn.Load(), counters.Retries.Load()
		return in > uint64(half+2) && r > retriesBefore+2, "records in " + strconv.FormatUint(in, 10) + ", retries " + strconv.FormatUint(r-retriesBefore, 10)
	})
	// Whatever the pipeline does meanwhile, the committed offsets stay where storage stopped.
	for range 10 {
		c, _, err := pipelinetest.Committed(ctx, kcfg, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		if c != before {
			t.Fatalf("committed %d records while Cassandra was away (had %d)", c, before)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if pipe.Ready() {
		t.Error("ready while its sink fails")
	}

	proxy.Up(t)
	pipelinetest.Eventually(t, 3*time.Minute, "everything committed after Cassandra came back", committedAll)

	first, last := pipelinetest.TimeSpan(frames)
	r := store.NewReader(directSession)
	want := pipelinetest.ExpectedFlowsWithPause(t, frames, fcfg, "s1", half, pauseBetweenHalves)
	pipelinetest.Eventually(t, time.Minute, "flows stored", func() (bool, string) {
		got, err := r.FlowsBetween(ctx, first, last)
		if err != nil {
			return false, err.Error()
		}
		d := pipelinetest.DiffFlows(got, want)
		return d == "", d
	})
	var n int
	if err := r.Packets(ctx, "s1", first, last, func(store.Packet) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != len(frames)+1 {
		t.Errorf("%d packets stored, want %d (the capture and the unknown-link frame)", n, len(frames)+1)
	}
	if got := counters.BadRecords.Load(); got != 1 {
		t.Errorf("bad records counted %d, want 1", got)
	}
	if got := counters.DecodeErrors[decode.UnsupportedLink].Load(); got != 1 {
		t.Errorf("unsupported link counted %d, want 1", got)
	}
	if !pipe.Ready() {
		t.Error("not ready after Cassandra came back")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("retries during the outage: %d; counters: %+v", counters.Retries.Load()-retriesBefore, counters.Snapshot())
}

// pauseBetweenHalves is longer than every TCP close timer (5 s) and far shorter than the idle timeouts
// (1 min and more) that could also fall due while a loaded machine stretches the pause.
const pauseBetweenHalves = 8 * time.Second
