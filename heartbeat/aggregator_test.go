package heartbeat

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// clock is the operator's clock in tests, moved by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestAggregator(opt Options) (*Aggregator, *clock) {
	c := &clock{now: t0}
	opt.Now = c.Now
	return NewAggregator(opt), c
}

// fleetPod makes the beats of one pod; each beat advances its clock by the interval.
type fleetPod struct {
	kind, ns, name, uid, pod, node string
	started                        time.Time
	interval                       time.Duration
	seq                            uint64
	at                             time.Time
}

func sensorPod(pod, node string) *fleetPod {
	return &fleetPod{kind: KindCaptureSensor, ns: "capture", name: "edge", uid: "u1", pod: pod, node: node,
		started: t0, interval: 5 * time.Second, at: t0}
}

func (p *fleetPod) beat(c Counters) Beat {
	p.seq++
	b := Beat{V: Version, Kind: p.kind, Namespace: p.ns, Name: p.name, UID: p.uid, Pod: p.pod, Node: p.node,
		Time: p.at, Seq: p.seq, StartedAt: p.started, IntervalMS: p.interval.Milliseconds(), Counters: c}
	p.at = p.at.Add(p.interval)
	return b
}

// restart is a new process in the same pod.
func (p *fleetPod) restart() {
	p.started = p.at
	p.seq = 0
}

func (p *fleetPod) key() ResourceKey {
	return ResourceKey{Kind: p.kind, Namespace: p.ns, Name: p.name, UID: p.uid}
}

func summary(t *testing.T, a *Aggregator, k ResourceKey) Summary {
	t.Helper()
	s, ok := a.Summary(k)
	if !ok {
		t.Fatalf("no summary for %v", k)
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRatesFromCounterDeltas(t *testing.T) {
	a, clk := newTestAggregator(Options{Window: 30 * time.Second})
	p := sensorPod("sensor-a", "node-a")
	// 1,000 packets/s of 500 bytes, 10 ring drops/s, 2 queue drops/s.
	for i := range uint64(4) {
		a.Observe(p.beat(Counters{Packets: 5000 * i, Bytes: 2_500_000 * i,
			Drops: Drops{KernelRing: 50 * i, SensorQueue: 10 * i}}))
		clk.advance(5 * time.Second)
	}
	s := summary(t, a, p.key())
	if !near(s.Rates.Packets, 1000) || !near(s.Rates.Bytes, 500_000) {
		t.Errorf("rates %v packets/s %v bytes/s, want 1000 and 500000", s.Rates.Packets, s.Rates.Bytes)
	}
	if !near(s.Rates.Drops.KernelRing, 10) || !near(s.Rates.Drops.SensorQueue, 2) || s.Rates.Drops.Interface != 0 {
		t.Errorf("drop rates %+v", s.Rates.Drops)
	}
	// 12 dropped of 1010 offered (ring drops were never counted as packets).
	if want := 12.0 / 1010; !near(s.DropRatio, want) {
		t.Errorf("drop ratio %v, want %v", s.DropRatio, want)
	}
	if s.Totals.Packets != 15000 || s.Totals.Drops.KernelRing != 150 || s.Totals.Drops.SensorQueue != 30 {
		t.Errorf("totals %+v", s.Totals)
	}
	if s.Pods != 1 || s.PodsLive != 1 || s.NodesTotal != 1 || s.Nodes[0].Node != "node-a" || !near(s.Nodes[0].Rates.Packets, 1000) {
		t.Errorf("pods/nodes %+v", s)
	}
	if !s.LastHeartbeat.Equal(t0.Add(15 * time.Second)) {
		t.Errorf("last heartbeat %v", s.LastHeartbeat)
	}
}

func TestRateFollowsTheWindowNotTheWholeHistory(t *testing.T) {
	a, _ := newTestAggregator(Options{Window: 10 * time.Second, MaxSamples: 16})
	p := sensorPod("sensor-a", "node-a")
	for i := range uint64(10) { // 100 packets/s for 45 s
		a.Observe(p.beat(Counters{Packets: 500 * i}))
	}
	for j := range uint64(3) { // then 1,000 packets/s
		a.Observe(p.beat(Counters{Packets: 4500 + 5000*(j+1)}))
	}
	if got := summary(t, a, p.key()).Rates.Packets; !near(got, 1000) {
		t.Errorf("rate %v over the last 10 s, want 1000", got)
	}
}

func TestOneBeatGivesNoRate(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	// An operator that starts while the pod has run for hours must not
	// report its whole history as a rate.
	a.Observe(p.beat(Counters{Packets: 1e9}))
	s := summary(t, a, p.key())
	if s.Rates.Packets != 0 || s.Totals.Packets != 1e9 {
		t.Errorf("rate %v total %v", s.Rates.Packets, s.Totals.Packets)
	}
}

func TestRestartStartsANewSeries(t *testing.T) {
	a, _ := newTestAggregator(Options{Window: 60 * time.Second, MaxSamples: 16})
	p := sensorPod("sensor-a", "node-a")
	for i := range uint64(4) { // 200 packets/s up to 3,000
		a.Observe(p.beat(Counters{Packets: 1000 * i, Drops: Drops{KernelRing: 7 * i}}))
	}
	p.restart()
	for i := range uint64(3) { // the new process: 100 packets/s from 0
		a.Observe(p.beat(Counters{Packets: 500 * i, Drops: Drops{KernelRing: i}}))
	}
	s := summary(t, a, p.key())
	if !near(s.Rates.Packets, 100) {
		t.Errorf("rate after restart %v, want 100 (the new series only)", s.Rates.Packets)
	}
	if s.Totals.Packets != 3000+1000 || s.Totals.Drops.KernelRing != 21+2 {
		t.Errorf("totals %d packets %d drops, want both runs: 4000 and 23", s.Totals.Packets, s.Totals.Drops.KernelRing)
	}
	// The second beat of the new run: still no rate from the jump itself.
	b := summary(t, a, p.key())
	if b.Rates.Packets < 0 {
		t.Errorf("negative rate %v", b.Rates.Packets)
	}
}

func TestFirstBeatAfterRestartHasNoRateSpike(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	a.Observe(p.beat(Counters{Packets: 0}))
	a.Observe(p.beat(Counters{Packets: 1_000_000}))
	p.restart()
	a.Observe(p.beat(Counters{Packets: 10}))
	if r := summary(t, a, p.key()).Rates.Packets; r != 0 {
		t.Errorf("rate %v from one beat of the new run, want 0 until a second one", r)
	}
}

func TestCounterGoingBackWithoutRestart(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	a.Observe(p.beat(Counters{Packets: 1000, Drops: Drops{Interface: 50}}))
	a.Observe(p.beat(Counters{Packets: 2000, Drops: Drops{Interface: 60}}))
	// rx_dropped reset (interface recreated) in the same process.
	a.Observe(p.beat(Counters{Packets: 3000, Drops: Drops{Interface: 5}}))
	s := summary(t, a, p.key())
	if s.Rates.Packets != 0 || s.Rates.Drops.Interface != 0 {
		t.Errorf("rates %+v right after a counter went back, want none yet", s.Rates)
	}
	if s.Totals.Packets != 3000 || s.Totals.Drops.Interface != 65 {
		t.Errorf("totals %d packets %d interface drops, want 3000 and 65", s.Totals.Packets, s.Totals.Drops.Interface)
	}
	a.Observe(p.beat(Counters{Packets: 4000, Drops: Drops{Interface: 10}}))
	s = summary(t, a, p.key())
	if !near(s.Rates.Packets, 200) || !near(s.Rates.Drops.Interface, 1) {
		t.Errorf("rates %v packets/s %v drops/s, want 200 and 1", s.Rates.Packets, s.Rates.Drops.Interface)
	}
}

func TestDuplicateAndLateBeatsAreIgnored(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	first := p.beat(Counters{Packets: 100})
	a.Observe(first)
	second := p.beat(Counters{Packets: 600})
	a.Observe(second)
	if a.Observe(second) || a.Observe(first) {
		t.Error("a beat seen twice, or older than the newest, was used")
	}
	old := *p
	p.restart()
	a.Observe(p.beat(Counters{Packets: 5}))
	late := old.beat(Counters{Packets: 1100}) // the old process's last beat, delivered late
	if a.Observe(late) {
		t.Error("a late beat from the previous run was used")
	}
	if s := summary(t, a, p.key()); s.Totals.Packets != 605 {
		t.Errorf("totals %d, want 605", s.Totals.Packets)
	}
	if st := a.Stats(); st.Ignored != 3 || st.Beats != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestClockStepBackStartsANewSeries(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	a.Observe(p.beat(Counters{Packets: 0}))
	a.Observe(p.beat(Counters{Packets: 500}))
	p.at = p.at.Add(-time.Minute)
	a.Observe(p.beat(Counters{Packets: 1000}))
	s := summary(t, a, p.key())
	if s.Rates.Packets != 0 || s.Totals.Packets != 1000 {
		t.Errorf("rate %v total %d after the pod's clock stepped back", s.Rates.Packets, s.Totals.Packets)
	}
}

func TestStaleThenForgottenKeepsTotals(t *testing.T) {
	a, clk := newTestAggregator(Options{ForgetAfter: 50 * time.Second})
	pa, pb := sensorPod("sensor-a", "node-a"), sensorPod("sensor-b", "node-b")
	for i := range uint64(3) {
		a.Observe(pa.beat(Counters{Packets: 500 * i, Drops: Drops{KafkaProduce: 3 * i}}))
		a.Observe(pb.beat(Counters{Packets: 1000 * i}))
		clk.advance(5 * time.Second)
	}
	a.TakeChanged()
	// node-a falls silent; node-b keeps beating.
	for i := uint64(3); i < 8; i++ {
		a.Observe(pb.beat(Counters{Packets: 1000 * i}))
		clk.advance(5 * time.Second)
		a.Sweep()
	}
	s := summary(t, a, pa.key())
	if s.PodsStale != 1 || s.PodsLive != 1 || !s.Nodes[0].Stale || s.Nodes[0].Node != "node-a" {
		t.Fatalf("node-a silent for 25 s (5 s beats): %+v", s)
	}
	if !near(s.Rates.Packets, 200) {
		t.Errorf("rate %v, want node-b's 200 only", s.Rates.Packets)
	}
	clk.advance(30 * time.Second) // node-a silent for 60 s, node-b for 35 s
	a.Sweep()
	if changed := a.TakeChanged(); len(changed) != 1 || changed[0] != pa.key() {
		t.Errorf("changed %v", changed)
	}
	s = summary(t, a, pa.key())
	if s.Pods != 1 || s.NodesTotal != 1 || s.Nodes[0].Node != "node-b" {
		t.Errorf("node-a not forgotten: %+v", s.Nodes)
	}
	// node-a's counts stay in the totals: drops once reported do not vanish.
	if s.Totals.Drops.KafkaProduce != 6 || s.Totals.Packets != 1000+7000 {
		t.Errorf("totals %+v", s.Totals)
	}
	if st := a.Stats(); st.Pods != 1 {
		t.Errorf("%d pods remembered", st.Pods)
	}
}

func TestFinalBeatMeansExitedNotStale(t *testing.T) {
	a, clk := newTestAggregator(Options{})
	p := sensorPod("sensor-a", "node-a")
	a.Observe(p.beat(Counters{Packets: 0}))
	final := p.beat(Counters{Packets: 500})
	final.Final = true
	a.Observe(final)
	clk.advance(time.Minute)
	a.Sweep()
	s := summary(t, a, p.key())
	if s.PodsExited != 1 || s.PodsStale != 0 || s.Nodes[0].Stale || !s.Nodes[0].Exited || s.Rates.Packets != 0 {
		t.Errorf("%+v", s)
	}
}

func TestRollingUpdateIsOneNode(t *testing.T) {
	a, clk := newTestAggregator(Options{})
	old, cur := sensorPod("sensor-old", "node-a"), sensorPod("sensor-new", "node-a")
	a.Observe(old.beat(Counters{Packets: 100, Drops: Drops{KernelRing: 1}}))
	clk.advance(time.Minute) // the old pod was killed without a final beat
	cur.at = old.at.Add(time.Minute)
	a.Observe(cur.beat(Counters{Packets: 0}))
	a.Observe(cur.beat(Counters{Packets: 1000, Drops: Drops{KernelRing: 2}}))
	s := summary(t, a, cur.key())
	if s.NodesTotal != 1 || s.Nodes[0].Stale || s.Nodes[0].Pods != 2 || s.Nodes[0].Drops.KernelRing != 3 {
		t.Errorf("node during a rolling update: %+v", s.Nodes)
	}
}

func TestNodesWorstFirstAndBounded(t *testing.T) {
	a, clk := newTestAggregator(Options{MaxNodes: 3})
	// node-i drops i per mille; node-9 falls silent.
	pods := make([]*fleetPod, 10)
	for i := range pods {
		pods[i] = sensorPod(fmt.Sprintf("sensor-%d", i), fmt.Sprintf("node-%d", i))
	}
	for k := range uint64(3) {
		for i, p := range pods {
			if i == 9 && k > 0 {
				continue
			}
			d := uint64(i) * 5 * k
			a.Observe(p.beat(Counters{Packets: 5000 * k, Drops: Drops{SensorQueue: d}}))
		}
		clk.advance(10 * time.Second)
	}
	s := summary(t, a, pods[0].key())
	if s.NodesTotal != 10 || len(s.Nodes) != 3 {
		t.Fatalf("%d of %d nodes listed, want 3 of 10", len(s.Nodes), s.NodesTotal)
	}
	got := []string{s.Nodes[0].Node, s.Nodes[1].Node, s.Nodes[2].Node}
	if got[0] != "node-9" || got[1] != "node-8" || got[2] != "node-7" || !s.Nodes[0].Stale {
		t.Errorf("worst first: %v (stale %v)", got, s.Nodes[0].Stale)
	}
	if !near(s.Nodes[1].DropRatio, 0.008) {
		t.Errorf("node-8 drop ratio %v, want 0.008", s.Nodes[1].DropRatio)
	}
}

func TestProcessorGaugesAndRates(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := &fleetPod{kind: KindPacketPipeline, ns: "ns", name: "pipe", uid: "u", pod: "proc-0", started: t0, interval: 2 * time.Second, at: t0}
	q := &fleetPod{kind: KindPacketPipeline, ns: "ns", name: "pipe", uid: "u", pod: "proc-1", started: t0, interval: 2 * time.Second, at: t0}
	a.Observe(p.beat(Counters{RecordsIn: 0, ConsumerLag: 900, FlowsActive: 10}))
	a.Observe(q.beat(Counters{RecordsIn: 0, ConsumerLag: 100, FlowsActive: 5}))
	a.Observe(p.beat(Counters{RecordsIn: 4000, RecordsOut: 3000, DecodeErrors: 20, ConsumerLag: 300, FlowsActive: 12}))
	a.Observe(q.beat(Counters{RecordsIn: 2000, RecordsOut: 2000, ConsumerLag: 0, FlowsActive: 7}))
	s := summary(t, a, p.key())
	if !near(s.Rates.RecordsIn, 3000) || !near(s.Rates.RecordsOut, 2500) || !near(s.Rates.DecodeErrors, 10) {
		t.Errorf("rates %+v", s.Rates)
	}
	if s.Totals.ConsumerLag != 300 || s.Totals.FlowsActive != 19 {
		t.Errorf("lag %d flows %d, want the latest of each pod summed: 300 and 19", s.Totals.ConsumerLag, s.Totals.FlowsActive)
	}
}

func replayPod(pod string) *fleetPod {
	return &fleetPod{kind: KindReplayJob, ns: "ns", name: "rj", uid: "u", pod: pod, started: t0, interval: time.Second, at: t0}
}

func TestReplayProgressToFinished(t *testing.T) {
	a, clk := newTestAggregator(Options{ForgetAfter: time.Minute})
	p := replayPod("rj-abc")
	var last float64 = -1
	for done := uint64(0); done <= 1000; done += 250 {
		b := p.beat(Counters{PacketsDone: done, PacketsTotal: 1000, BytesDone: done * 100, BytesTotal: 100_000})
		b.Final = done == 1000
		a.Observe(b)
		pr := summary(t, a, p.key()).Progress
		if pr.Percent < last {
			t.Errorf("progress went back: %v after %v", pr.Percent, last)
		}
		last = pr.Percent
	}
	pr := summary(t, a, p.key()).Progress
	if pr.Percent != 100 || !pr.Finished || pr.BytesDone != 100_000 {
		t.Errorf("at the end: %+v", pr)
	}
	clk.advance(2 * time.Minute)
	a.Sweep()
	if s := summary(t, a, p.key()); s.Pods != 0 || s.Progress.Percent != 100 || !s.Progress.Finished {
		t.Errorf("after the pod was forgotten: %+v", s)
	}
}

func TestReplayRetryReplacesTheFailedPodsShare(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	failed, retry := replayPod("rj-1"), replayPod("rj-2")
	b := failed.beat(Counters{PacketsDone: 400, PacketsTotal: 1000})
	b.Final = true
	a.Observe(b)
	a.Observe(retry.beat(Counters{PacketsDone: 100, PacketsTotal: 1000}))
	if pr := summary(t, a, retry.key()).Progress; pr.Percent != 10 || pr.Finished {
		t.Errorf("progress %+v, want the retry's 10%%", pr)
	}
}

func TestLoopingReplayHasNoPercent(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p := replayPod("rj-abc")
	a.Observe(p.beat(Counters{Packets: 10, PacketsDone: 10}))
	if pr := summary(t, a, p.key()).Progress; pr.Percent != -1 {
		t.Errorf("percent %v of a run without end", pr.Percent)
	}
}

func TestNewUIDIsAnotherResource(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	old := sensorPod("sensor-a", "node-a")
	a.Observe(old.beat(Counters{Packets: 10, Drops: Drops{KernelRing: 10}}))
	cur := sensorPod("sensor-x", "node-a")
	cur.uid = "u2"
	a.Observe(cur.beat(Counters{Packets: 1}))
	s := summary(t, a, cur.key())
	if s.Totals.Drops.KernelRing != 0 || s.Pods != 1 {
		t.Errorf("the recreated resource inherited figures: %+v", s)
	}
	a.Forget(old.key())
	if _, ok := a.Summary(old.key()); ok {
		t.Error("forgotten resource still summarised")
	}
}

// A deleted object's UID is not known once it is gone: forgetting it by name drops every UID it had, and
// nothing of another name or kind.
func TestForgetObjectDropsEveryUID(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	old, cur := sensorPod("sensor-a", "node-a"), sensorPod("sensor-x", "node-a")
	cur.uid = "u2"
	other := sensorPod("sensor-b", "node-b")
	other.name = "core"
	replay := replayPod("rj-1")
	replay.ns, replay.name = "capture", "edge"
	for _, p := range []*fleetPod{old, cur, other, replay} {
		a.Observe(p.beat(Counters{Packets: 1}))
	}
	a.ForgetObject(KindCaptureSensor, "capture", "edge")
	for _, p := range []*fleetPod{old, cur} {
		if _, ok := a.Summary(p.key()); ok {
			t.Errorf("%v still summarised", p.key())
		}
	}
	for _, p := range []*fleetPod{other, replay} {
		if _, ok := a.Summary(p.key()); !ok {
			t.Errorf("%v forgotten with another object", p.key())
		}
	}
	if got := a.TakeChanged(); len(got) != 2 {
		t.Errorf("changed %v, want only the two kept", got)
	}
}

func TestIdleResourceIsDropped(t *testing.T) {
	a, clk := newTestAggregator(Options{ForgetAfter: time.Minute, IdleResourceAfter: time.Hour})
	p := sensorPod("sensor-a", "node-a")
	a.Observe(p.beat(Counters{Packets: 10}))
	clk.advance(2 * time.Minute)
	a.Sweep()
	if _, ok := a.Summary(p.key()); !ok {
		t.Fatal("resource dropped with its pod; its totals must stay until it is idle for an hour")
	}
	clk.advance(time.Hour)
	a.Sweep()
	if st := a.Stats(); st.Resources != 0 {
		t.Errorf("%d resources kept", st.Resources)
	}
}

func TestNotifyAndTakeChanged(t *testing.T) {
	a, _ := newTestAggregator(Options{})
	p, q := sensorPod("sensor-a", "node-a"), replayPod("rj-1")
	a.Observe(p.beat(Counters{}))
	a.Observe(p.beat(Counters{}))
	a.Observe(q.beat(Counters{}))
	select {
	case <-a.Notify():
	default:
		t.Fatal("no notification after beats")
	}
	got := a.TakeChanged()
	if len(got) != 2 || got[0] != p.key() || got[1] != q.key() {
		t.Errorf("changed %v", got)
	}
	if again := a.TakeChanged(); len(again) != 0 {
		t.Errorf("changed twice: %v", again)
	}
}

func TestWindowIsBoundedBySamples(t *testing.T) {
	a, _ := newTestAggregator(Options{MaxSamples: 4, Window: time.Hour})
	p := sensorPod("sensor-a", "node-a")
	for i := range uint64(100) {
		a.Observe(p.beat(Counters{Packets: i * i})) // accelerating
	}
	a.mu.Lock()
	n := len(a.res[p.key()].pods["sensor-a"].samples)
	a.mu.Unlock()
	if n != 4 {
		t.Fatalf("%d samples kept, want 4", n)
	}
	// Over the last 3 intervals: (99² - 96²) / 15 s.
	if got, want := summary(t, a, p.key()).Rates.Packets, float64(99*99-96*96)/15; !near(got, want) {
		t.Errorf("rate %v, want %v", got, want)
	}
}

// A node whose running pod reports a problem lists first, with the newest beat's problem; a node whose
// pods all exited keeps the last word of one that exited with a problem, unless a pod still runs there;
// a later beat without a problem clears it.
func TestProblemOfTheNewestBeatOfARunningPod(t *testing.T) {
	a, _ := newTestAggregator(Options{Window: 60 * time.Second, MaxSamples: 16})
	ok, bad, gone := sensorPod("p-a", "node-a"), sensorPod("p-b", "node-b"), sensorPod("p-c", "node-c")
	replaced, successor := sensorPod("p-d", "node-d"), sensorPod("p-e", "node-d")
	for i := range uint64(3) {
		a.Observe(ok.beat(Counters{Packets: 1000 * i}))
		a.Observe(successor.beat(Counters{Packets: 1000 * i}))
		b := bad.beat(Counters{Packets: 10 * i})
		b.Problem = fmt.Sprintf("kafka: fetch t[0]: attempt %d", i)
		a.Observe(b)
		for _, p := range []*fleetPod{gone, replaced} {
			g := p.beat(Counters{Packets: i})
			g.Problem, g.Final = "sensor: interface \"eth9\" not found", i == 2
			a.Observe(g)
		}
	}
	s := summary(t, a, ok.key())
	want := map[string]string{"node-a": "", "node-b": "kafka: fetch t[0]: attempt 2", "node-c": "sensor: interface \"eth9\" not found", "node-d": ""}
	for i, n := range s.Nodes {
		if n.Problem != want[n.Node] {
			t.Errorf("node %s reports %q, want %q", n.Node, n.Problem, want[n.Node])
		}
		if i < 2 && n.Problem == "" {
			t.Errorf("node %s without a problem listed before one with", n.Node)
		}
	}
	a.Observe(bad.beat(Counters{Packets: 40}))
	for _, n := range summary(t, a, ok.key()).Nodes {
		if n.Node == "node-b" && n.Problem != "" {
			t.Errorf("a beat without a problem left %q", n.Problem)
		}
	}
}
