package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/processor/store"
)

// A day of stored flows, for BenchmarkQueryDay: BENCH_QUERY_FLOWS_PER_SECOND flows a second (default
// 50; hack/bench.sh can pass the rate its end-to-end run stored) over BENCH_QUERY_HOURS hours (default
// 24), between hosts of a /16, and the edge rollups per minute the pipeline would have written for
// them. Stored once per process (go test -count N runs the benchmark N times on the same day) and
// dropped by TestMain. Writing them is not what is measured.
var benchDay struct {
	drop     func()
	reader   *store.Reader
	from, to time.Time
	flows    int
	rollups  int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDay.drop != nil {
		benchDay.drop()
	}
	os.Exit(code)
}

func storeBenchDay(b *testing.B) {
	if benchDay.reader != nil {
		return
	}
	rate, hours := envInt("BENCH_QUERY_FLOWS_PER_SECOND", 50), envInt("BENCH_QUERY_HOURS", 24)
	ccfg := cassandratest.Config(b)
	cl, err := ccfg.Cluster()
	if err != nil {
		b.Fatal(err)
	}
	ks := fmt.Sprintf("cfbench_query_%d", time.Now().UnixNano())
	ctx := context.Background()
	if err := store.Migrate(ctx, cl, ks, store.DefaultReplication); err != nil {
		b.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		b.Fatal(err)
	}
	benchDay.drop = func() {
		s.Close()
		if a, err := ccfg.Session(); err == nil {
			_ = a.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
			a.Close()
		}
	}
	w := store.NewWriter(s, store.Options{})
	rnd := rand.New(rand.NewPCG(1, 2))
	from := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Duration(hours) * time.Hour)
	// Conversations between a few thousand pairs of hosts, a few of them busy (a resolver, a proxy)
	// and most rare, as networks have: Zipf over 5,000 pairs.
	pairs := make([][2]netip.Addr, 5000)
	for i := range pairs {
		pairs[i] = [2]netip.Addr{netip.AddrFrom4([4]byte{10, 20, byte(rnd.IntN(8)), byte(rnd.IntN(256))}),
			netip.AddrFrom4([4]byte{10, 30, byte(rnd.IntN(4)), byte(1 + rnd.IntN(254))})}
	}
	zipf := rand.NewZipf(rnd, 1.1, 1, uint64(len(pairs)-1))
	began := time.Now()
	total, rows := 0, 0
	var (
		flows []store.Flow
		er    []store.EdgeRow
	)
	for minute := from; minute.Before(to); minute = minute.Add(time.Minute) {
		edges := map[[2]netip.Addr]*store.EdgeRow{}
		for i := range rate * 60 {
			pair := pairs[zipf.Uint64()]
			a, z := pair[0], pair[1]
			start := minute.Add(time.Duration(rnd.Int64N(int64(time.Minute))))
			f := store.Flow{UID: fmt.Sprintf("C%d-%d", minute.Unix(), i), Sensor: "bench", Start: start,
				End: start.Add(time.Duration(rnd.Int64N(int64(30 * time.Second)))), Proto: 6, OrigAddr: a, RespAddr: z,
				OrigPort: uint16(1024 + rnd.IntN(60000)), RespPort: 443, OrigPkts: 1 + rnd.Uint64N(20), RespPkts: 1 + rnd.Uint64N(20),
				History: "ShADadFf", State: "SF", Closed: true}
			f.OrigIPBytes, f.RespIPBytes = f.OrigPkts*120, f.RespPkts*900
			flows = append(flows, f)
			if z.Less(a) {
				a, z = z, a
			}
			e := edges[[2]netip.Addr{a, z}]
			if e == nil {
				e = &store.EdgeRow{Sensor: "bench", Start: minute, Width: time.Minute, A: a, B: z, Partition: int32(rnd.IntN(3)), FirstOffset: int64(total + len(flows))}
				edges[[2]netip.Addr{a, z}] = e
			}
			e.Packets += f.OrigPkts + f.RespPkts
			e.Bytes += f.OrigIPBytes + f.RespIPBytes
			e.Flows++
		}
		for _, e := range edges {
			er = append(er, *e)
		}
		// An hour at a time: the pipeline too stores flows in blocks of thousands.
		if minute.Add(time.Minute).Truncate(time.Hour) != minute.Truncate(time.Hour) || !minute.Add(time.Minute).Before(to) {
			if err := w.WriteFlows(ctx, flows, 0); err != nil {
				b.Fatal(err)
			}
			if err := w.WriteRollups(ctx, nil, er, 0); err != nil {
				b.Fatal(err)
			}
			total, rows = total+len(flows), rows+len(er)
			flows, er = flows[:0], er[:0]
		}
	}
	b.Logf("stored %d flows and %d edge rollup rows over %d h (%d flows/s) in %s", total, rows, hours, rate, time.Since(began).Round(time.Second))
	benchDay.reader, benchDay.from, benchDay.to, benchDay.flows, benchDay.rollups = store.NewReader(s), from, to, total, rows
}

// BenchmarkQueryDay times, over a day of stored flows (see storeBenchDay), query top (every flow read
// and summed by host), query graph from the flows, and query graph from the edge rollups (what a range
// of an hour or more reads). Run it with -benchtime 1x: each operation reads the whole day.
func BenchmarkQueryDay(b *testing.B) {
	storeBenchDay(b)
	ctx := context.Background()
	r := benchDay.reader
	b.Run("top", func(b *testing.B) {
		for range b.N {
			flows, err := r.FlowsBetween(ctx, benchDay.from, benchDay.to)
			if err != nil {
				b.Fatal(err)
			}
			top, err := Top(flows, ByHost, "bytes", 20)
			if err != nil || len(top) == 0 || len(flows) != benchDay.flows {
				b.Fatalf("%d talkers of %d flows (stored %d): %v", len(top), len(flows), benchDay.flows, err)
			}
		}
		b.ReportMetric(float64(benchDay.flows), "flows")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/query")
	})
	for _, src := range []string{SourceFlows, SourceRollups} {
		b.Run("graph-"+src, func(b *testing.B) {
			for range b.N {
				g, _, err := LoadGraph(ctx, r, GraphOptions{From: benchDay.from, To: benchDay.to, Window: time.Hour, Source: src})
				if err != nil || len(g.Edges) == 0 || g.Source != src {
					b.Fatalf("graph from %s: %d edges, %v", g.Source, len(g.Edges), err)
				}
			}
			b.ReportMetric(float64(benchDay.flows), "flows")
			if src == SourceRollups {
				b.ReportMetric(float64(benchDay.rollups), "rollup-rows")
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/query")
		})
	}
}
