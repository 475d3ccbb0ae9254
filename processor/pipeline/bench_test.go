package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// BenchmarkFlowTableAdd measures the pipeline's flow accounting per packet (decoding excluded).
func BenchmarkFlowTableAdd(b *testing.B) {
	frames := pipelinetest.ReadCapture(b, pipelinetest.SharedPcap(b, "ndpi/ethereum.pcap"))
	dec := decode.NewDecoder()
	pkts := make([]decode.Packet, len(frames))
	for i, f := range frames {
		dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &pkts[i])
	}
	newTable := pipeline.NewFlowTableFactory(pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, nil)
	tbl, _ := newTable(nil, func(store.Flow) {})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := &pkts[i%len(pkts)]
		tbl.Add(p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// BenchmarkPipelineIntoCassandra runs the whole data path on the real services: a capture, repeated
// with shifted times to 20,000 records, from a 3-partition topic into Cassandra (packets and flows),
// until every offset is committed. It reports records per second.
func BenchmarkPipelineIntoCassandra(b *testing.B) {
	kcfg := kafkatest.Plain(b)
	ccfg := cassandratest.Config(b)
	ks := cassandratest.NewKeyspace(b, ccfg)
	cl, err := ccfg.Cluster()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Migrate(ctx, cl, ks, store.DefaultReplication); err != nil {
		b.Fatal(err)
	}
	session, err := store.Connect(cl, ks)
	if err != nil {
		b.Fatal(err)
	}
	defer session.Close()
	base := pipelinetest.ReadCapture(b, pipelinetest.SharedPcap(b, "ndpi/ethereum.pcap"))
	var frames []pipelinetest.Frame
	for rep := 0; len(frames) < 20000; rep++ {
		for _, f := range base {
			f.Meta.Timestamp = f.Meta.Timestamp.Add(time.Duration(rep) * time.Hour)
			frames = append(frames, f)
		}
	}
	frames = frames[:20000]
	kopts, err := kcfg.Options()
	if err != nil {
		b.Fatal(err)
	}
	var bytes int
	for _, f := range frames {
		bytes += len(f.Data)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		topic := kafkatest.NewTopic(b, kcfg, 3)
		group := uniqueName("bench-")
		pipelinetest.Produce(b, kcfg, topic, frames)
		counters := &pipeline.Counters{}
		fcfg := pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: 30 * time.Minute, MaxFlows: 1 << 20}
		pipe, err := pipeline.New(pipeline.Config{Topic: topic, Group: group, Sensor: "bench", StorePackets: true, StoreFlows: true,
			PacketTTL: time.Hour, FlowTTL: time.Hour},
			pipeline.Deps{Kafka: kopts, Writer: store.NewWriter(session, store.Options{}), Reader: store.NewReader(session),
				NewFlowTable: pipeline.NewFlowTableFactory(fcfg, counters), Counters: counters,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- pipe.Run(runCtx) }()
		for counters.PacketsWritten.Load() < uint64(len(frames)) {
			time.Sleep(10 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(frames))/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(bytes)*8/1e6/elapsed.Seconds(), "Mbit/s")
		b.StartTimer()
	}
}

// BenchmarkFlowTableCheckpoint measures what each commit costs per partition: serializing 100,000 open
// flows. It reports the state's size.
func BenchmarkFlowTableCheckpoint(b *testing.B) {
	newTable := pipeline.NewFlowTableFactory(pipeline.FlowConfig{IdleTimeout: time.Hour, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, nil)
	tbl, _ := newTable(nil, func(store.Flow) {})
	var p decode.Packet
	p.NIP = 1
	start := time.Unix(1700000000, 0)
	for i := range 100000 {
		p.Timestamp = start.Add(time.Duration(i) * time.Microsecond)
		p.IP[0] = decode.IPHeader{Version: 4, Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Dst: netip.AddrFrom4([4]byte{192, 0, 2, 1}),
			Proto: decode.ProtoTCP, TotalLen: 60, HeaderLen: 20,
			L4: decode.Transport{Proto: decode.ProtoTCP, SrcPort: uint16(1024 + i%60000), DstPort: 443, Flags: decode.TCPSyn, Seq: uint32(i)}}
		tbl.Add(&p)
	}
	if tbl.Len() != 100000 {
		b.Fatalf("%d flows", tbl.Len())
	}
	var size int
	b.ResetTimer()
	for range b.N {
		state, err := tbl.MarshalState()
		if err != nil {
			b.Fatal(err)
		}
		size = len(state)
	}
	b.ReportMetric(float64(size)/1e6, "MB/state")
}
