package controllers

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
)

// fleet feeds one round of beats from n nodes of one sensor into agg, at virtual time now.
func fleet(agg *heartbeat.Aggregator, cs *v1alpha1.CaptureSensor, n int, start, now time.Time) {
	elapsed := now.Sub(start).Seconds()
	for i := 0; i < n; i++ {
		agg.Observe(heartbeat.Beat{
			V: heartbeat.Version, Kind: heartbeat.KindCaptureSensor, Namespace: cs.Namespace, Name: cs.Name, UID: string(cs.UID),
			Pod: fmt.Sprintf("sensor-%d", i), Node: fmt.Sprintf("node-%04d", i), Time: now, StartedAt: start,
			Seq: uint64(elapsed/5) + 1, IntervalMS: 5000,
			Counters: heartbeat.Counters{Packets: uint64(elapsed * 1000), Bytes: uint64(elapsed * 800000),
				Drops: heartbeat.Drops{KernelRing: uint64(elapsed * float64(i%7))}},
		})
	}
}

// However many beats arrive, a resource's figures are released at most once per status interval.
func TestFiguresAtMostOncePerInterval(t *testing.T) {
	now := time.Now()
	agg := heartbeat.NewAggregator(heartbeat.Options{Now: func() time.Time { return now }})
	f := NewFigures(agg, time.Hour)
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fleet", UID: types.UID("u")}}
	start := now.Add(-time.Minute)
	released := 0
	for round := 0; round < 5; round++ {
		fleet(agg, cs, 1000, start, now)
		for range 100 { // many wake-ups per round
			if _, fresh, _ := f.take(heartbeat.KindCaptureSensor, cs); fresh {
				released++
			}
		}
		now = now.Add(5 * time.Second)
	}
	if released != 1 {
		t.Fatalf("figures released %d times within one interval, want 1", released)
	}
	s, _ := f.Summary(heartbeat.KindCaptureSensor, cs)
	var st v1alpha1.CaptureSensorStatus
	sensorFigures(&st, s, 1)
	if st.PacketsPerSecond != 1000*1000 || len(st.PerNode) != 20 {
		t.Fatalf("fleet of 1000 nodes at 1000 packets/s: status says %d packets/s, %d nodes listed", st.PacketsPerSecond, len(st.PerNode))
	}
}

// BenchmarkFleetStatus: 1,000 nodes of one sensor beating every 5 s; each op is one round of beats plus the
// status the operator derives from them. Reports the operator's heap per node.
func BenchmarkFleetStatus(b *testing.B) {
	now := time.Now()
	agg := heartbeat.NewAggregator(heartbeat.Options{Now: func() time.Time { return now }})
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fleet", UID: types.UID("u")}}
	start := now
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		now = now.Add(5 * time.Second)
		fleet(agg, cs, 1000, start, now)
		s, _ := agg.Summary(heartbeat.ResourceKey{Kind: heartbeat.KindCaptureSensor, Namespace: "ns", Name: "fleet", UID: "u"})
		var st v1alpha1.CaptureSensorStatus
		sensorFigures(&st, s, 1)
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(agg)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1000, "heap-B/node")
}
