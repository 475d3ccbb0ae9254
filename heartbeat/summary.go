package heartbeat

import (
	"sort"
	"time"
)

// Summary is one resource's figures for its status.
//
// Pods are live (beating), stale (silent for three of their intervals) or
// exited (sent their final beat); pods silent for ForgetAfter are forgotten.
type Summary struct {
	Key                                   ResourceKey
	Pods, PodsLive, PodsStale, PodsExited int
	// LastHeartbeat is the newest beat's time, by its pod's clock.
	LastHeartbeat time.Time
	// Rates are per second over the window, summed over live pods (stale and
	// exited pods add nothing: nobody knows what they do now).
	Rates Rates
	// DropRatio is dropped / offered packets over the window (0 when nothing
	// was offered).
	DropRatio float64
	// Totals are every count of every pod since the operator first heard of
	// it, including pods that restarted or were forgotten since; so a drop
	// once reported stays reported. Its gauges (FlowsActive, ConsumerLag) are
	// summed over live and stale pods; its replay totals are Progress's.
	Totals Counters
	// TotalDropRatio is Totals' drops over Totals' offered packets.
	TotalDropRatio float64
	// Nodes are per-node figures, worst first (stale nodes, then by drop ratio
	// over the window, then drops per second), at most Options.MaxNodes;
	// NodesTotal is how many there are in all.
	Nodes      []NodeSummary
	NodesTotal int
	Progress   Progress
}

// Rates are per-second rates of the monotonic Counters.
type Rates struct {
	Packets, Bytes float64
	Drops          DropRates
	DecodeErrors   float64
	Filtered       float64
	SinkErrors     float64
	FlowsWritten   float64
	RecordsIn      float64
	RecordsOut     float64
	PacketsDone    float64
	BytesDone      float64
	Failed         float64
	Truncated      float64
	SequenceGaps   float64
}

// DropRates are drops per second, by cause.
type DropRates struct {
	KernelRing, Interface, SensorQueue, KafkaProduce float64
}

// Total is the sum over causes.
func (d DropRates) Total() float64 {
	return d.KernelRing + d.Interface + d.SensorQueue + d.KafkaProduce
}

// fields matches Counters.counterFields one for one.
func (r *Rates) fields() [17]*float64 {
	return [...]*float64{
		&r.Packets, &r.Bytes,
		&r.Drops.KernelRing, &r.Drops.Interface, &r.Drops.SensorQueue, &r.Drops.KafkaProduce,
		&r.DecodeErrors, &r.Filtered, &r.SinkErrors, &r.FlowsWritten,
		&r.RecordsIn, &r.RecordsOut, &r.PacketsDone, &r.BytesDone, &r.Failed, &r.Truncated, &r.SequenceGaps,
	}
}

func (r *Rates) add(o Rates) {
	rf, of := r.fields(), o.fields()
	for i := range rf {
		*rf[i] += *of[i]
	}
}

// dropRatio is drops over offered packets, offered as Counters.Offered counts them.
func (r Rates) dropRatio() float64 {
	return ratio(r.Drops.Total(), r.Packets+r.Drops.KernelRing+r.Drops.Interface)
}

func ratio(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return part / whole
}

// NodeSummary is one node's figures (the sum of its pods': during a rolling
// update a node has two).
type NodeSummary struct {
	Node string
	Pods int
	// Rates over the window, of the node's live pods.
	Rates     Rates
	DropRatio float64
	// Drops are cumulative, of the node's pods still remembered.
	Drops         Drops
	LastHeartbeat time.Time
	// Stale: the node has pods that did not exit and none of them is beating.
	Stale bool
	// Exited: every pod on the node sent its final beat.
	Exited bool
	// Problem is the newest beat's Problem of one of the node's pods still running, or, when none runs,
	// the last word of one that exited ("" when none has one).
	Problem       string
	exitedProblem string
}

// Progress is a replay's progress: the current run of every pod, summed.
// While some pod runs, pods that exited before finishing are left out (the
// Job retries them); when none runs, every pod counts.
type Progress struct {
	PacketsDone, PacketsTotal uint64
	BytesDone, BytesTotal     uint64
	// Percent is done over total, by packets (by bytes when only bytes have a
	// total); -1 when the run has no end (it loops until stopped) or nothing
	// is known.
	Percent float64
	// Finished: every pod sent its final beat having done its total.
	Finished bool
}

// rate is p's rate over the window: from the oldest beat in it to the newest.
func (p *pod) rate(window time.Duration) Rates {
	var r Rates
	n := len(p.samples)
	if n < 2 {
		return r
	}
	last := p.samples[n-1]
	first := last
	for i := n - 2; i >= 0 && last.at-p.samples[i].at <= int64(window); i-- {
		first = p.samples[i]
	}
	dt := float64(last.at-first.at) / 1e9
	if dt <= 0 {
		return r
	}
	rf, lf, ff := r.fields(), last.c.counterFields(), first.c.counterFields()
	for i := range rf {
		*rf[i] = float64(*lf[i]-*ff[i]) / dt // a series never goes back (observe starts a new one)
	}
	return r
}

func (r *resource) summary(k ResourceKey, opt Options, now time.Time) Summary {
	s := Summary{Key: k, Totals: r.departed, Pods: len(r.pods)}
	nodes := map[string]*NodeSummary{}
	var running, all Progress
	allDone := len(r.pods) > 0
	for name, p := range r.pods {
		stale := p.staleAt(now, opt.StaleAfter)
		cum := p.cumulative()
		s.Totals.addCounters(cum)
		cur := p.latest().c
		if !p.exited {
			s.Totals.FlowsActive += cur.FlowsActive
			s.Totals.ConsumerLag += cur.ConsumerLag
			s.Totals.Exporters += cur.Exporters
		}
		finished := p.exited && cur.PacketsTotal > 0 && cur.PacketsDone >= cur.PacketsTotal
		allDone = allDone && finished
		running.addProgress(cur, !p.exited || finished)
		all.addProgress(cur, true)
		if p.lastBeat.After(s.LastHeartbeat) {
			s.LastHeartbeat = p.lastBeat
		}

		nodeName := p.node
		if nodeName == "" {
			nodeName = name
		}
		ns := nodes[nodeName]
		if ns == nil {
			ns = &NodeSummary{Node: nodeName, Stale: true, Exited: true}
			nodes[nodeName] = ns
		}
		ns.Pods++
		ns.Drops.add(cum.Drops)
		if p.lastBeat.After(ns.LastHeartbeat) {
			ns.LastHeartbeat = p.lastBeat
		}
		ns.Exited = ns.Exited && p.exited
		switch {
		case p.problem == "":
		case p.exited:
			ns.exitedProblem = p.problem
		default:
			ns.Problem = p.problem
		}
		switch {
		case p.exited:
			s.PodsExited++
		case stale:
			s.PodsStale++
		default:
			s.PodsLive++
			ns.Stale = false
			pr := p.rate(opt.Window)
			ns.Rates.add(pr)
			s.Rates.add(pr)
		}
	}
	s.DropRatio = s.Rates.dropRatio()
	s.TotalDropRatio = ratio(float64(s.Totals.Drops.Total()), float64(s.Totals.Offered()))

	if len(r.pods) == 0 {
		s.Progress = r.progress
	} else {
		// A pod that gave up half way was retried by its Job: its share is
		// the retry's now, unless nothing runs any more.
		prog := running
		if s.PodsLive+s.PodsStale == 0 {
			prog = all
		}
		prog.Finished = allDone
		prog.Percent = percent(prog)
		s.Progress = prog
	}

	s.NodesTotal = len(nodes)
	s.Nodes = make([]NodeSummary, 0, min(len(nodes), opt.MaxNodes))
	for _, ns := range nodes {
		ns.Stale = ns.Stale && !ns.Exited
		if ns.Exited && ns.Problem == "" {
			ns.Problem = ns.exitedProblem
		}
		ns.exitedProblem = ""
		ns.DropRatio = ns.Rates.dropRatio()
		s.Nodes = append(s.Nodes, *ns)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return worse(&s.Nodes[i], &s.Nodes[j]) })
	if len(s.Nodes) > opt.MaxNodes {
		s.Nodes = s.Nodes[:opt.MaxNodes]
	}
	return s
}

func (d *Drops) add(o Drops) {
	d.KernelRing += o.KernelRing
	d.Interface += o.Interface
	d.SensorQueue += o.SensorQueue
	d.KafkaProduce += o.KafkaProduce
}

func (p *Progress) addProgress(c Counters, include bool) {
	if !include {
		return
	}
	p.PacketsDone += c.PacketsDone
	p.PacketsTotal += c.PacketsTotal
	p.BytesDone += c.BytesDone
	p.BytesTotal += c.BytesTotal
}

func percent(p Progress) float64 {
	switch {
	case p.PacketsTotal > 0:
		return min(100, 100*float64(p.PacketsDone)/float64(p.PacketsTotal))
	case p.BytesTotal > 0:
		return min(100, 100*float64(p.BytesDone)/float64(p.BytesTotal))
	}
	return -1
}

// worse orders nodes for the status list: the ones to look at first.
func worse(a, b *NodeSummary) bool {
	if a.Stale != b.Stale {
		return a.Stale
	}
	if (a.Problem != "") != (b.Problem != "") {
		return a.Problem != ""
	}
	if a.DropRatio != b.DropRatio {
		return a.DropRatio > b.DropRatio
	}
	if da, db := a.Rates.Drops.Total(), b.Rates.Drops.Total(); da != db {
		return da > db
	}
	return a.Node < b.Node
}
