package heartbeat

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fleet is n sensor pods, one per node, of one CaptureSensor.
func fleet(n int) []*fleetPod {
	pods := make([]*fleetPod, n)
	for i := range pods {
		pods[i] = sensorPod(fmt.Sprintf("sensor-%05d", i), fmt.Sprintf("node-%05d", i))
	}
	return pods
}

// fleetCounters are plausible sensor counters of pod i at beat k.
func fleetCounters(i int, k uint64) Counters {
	return Counters{Packets: k * 50_000, Bytes: k * 40_000_000, RecordsOut: k * 49_990,
		Drops: Drops{KernelRing: k * uint64(i%7), SensorQueue: k * uint64(i%3)}}
}

// BenchmarkObserveFleet: 1,000 nodes beating every 5 s into one Aggregator
// (the fleet scale of the performance aims). ns/op is the cost of one beat; a beat every 5 s
// from each of 1,000 nodes is 200 beats/s.
func BenchmarkObserveFleet(b *testing.B) {
	const nodes = 1000
	a, clk := newTestAggregator(Options{})
	pods := fleet(nodes)
	beats := make([]Beat, nodes)
	k := uint64(0)
	refill := func() {
		k++
		for i, p := range pods {
			beats[i] = p.beat(fleetCounters(i, k))
		}
		clk.advance(5 * time.Second)
	}
	refill()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % nodes
		if j == 0 && i > 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		a.Observe(beats[j])
	}
}

// BenchmarkSummaryFleet: one status computation of a 1,000-node resource
// (the operator does this at most once per status interval).
func BenchmarkSummaryFleet(b *testing.B) {
	const nodes = 1000
	a, clk := newTestAggregator(Options{})
	pods := fleet(nodes)
	for k := range uint64(8) {
		for i, p := range pods {
			a.Observe(p.beat(fleetCounters(i, k)))
		}
		clk.advance(5 * time.Second)
	}
	key := pods[0].key()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if s, _ := a.Summary(key); s.NodesTotal != nodes {
			b.Fatalf("%d nodes", s.NodesTotal)
		}
	}
}

// BenchmarkStatePerPod reports the heap the Aggregator holds per pod once
// every pod's window is full (the operator's memory bound).
func BenchmarkStatePerPod(b *testing.B) {
	const nodes = 1000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a, clk := newTestAggregator(Options{})
		pods := fleet(nodes)
		for k := range uint64(20) { // more beats than the window holds
			for j, p := range pods {
				a.Observe(p.beat(fleetCounters(j, k)))
			}
			clk.advance(5 * time.Second)
		}
		pods = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/nodes, "bytes/pod")
		runtime.KeepAlive(a)
	}
}
