package controllers

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/heartbeat"
)

// ReasonDegraded says a sensor runs but loses more than its spec tolerates, or a node went silent.
const ReasonDegraded = "Degraded"

// Figures joins the workloads' heartbeats to the reconcilers: it turns the aggregator's summaries into status
// figures, wakes the reconciler of a resource with new figures, and lets each resource's figures be written
// at most once per interval, so a fleet of beating pods costs a bounded number of status writes.
type Figures struct {
	agg      *heartbeat.Aggregator
	interval time.Duration

	mu sync.Mutex
	// last is keyed like the aggregator, so an object gone from the API server (UID unknown) can be forgotten by name.
	last   map[heartbeat.ResourceKey]time.Time
	events map[string]chan event.GenericEvent
}

// NewFigures reads summaries from agg and allows a resource's figures to change once per interval.
func NewFigures(agg *heartbeat.Aggregator, interval time.Duration) *Figures {
	f := &Figures{agg: agg, interval: interval, last: map[heartbeat.ResourceKey]time.Time{}, events: map[string]chan event.GenericEvent{}}
	for _, k := range []string{heartbeat.KindCaptureSensor, heartbeat.KindReplayJob, heartbeat.KindPacketPipeline, heartbeat.KindFlowCollector} {
		f.events[k] = make(chan event.GenericEvent, 1024)
	}
	return f
}

// Changed is the heartbeat consumer's OnChange: it asks for a reconcile of the resource. When the queue is
// full the wake-up is dropped; the resource's next beat, seconds later, asks again.
func (f *Figures) Changed(k heartbeat.ResourceKey) {
	ch, ok := f.events[k.Kind]
	if !ok {
		return
	}
	obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
	select {
	case ch <- event.GenericEvent{Object: obj}:
	default:
	}
}

func (f *Figures) wakeups(kind string) <-chan event.GenericEvent { return f.events[kind] }

// take returns the resource's summary when its figures may be rewritten now; otherwise it says how long
// until they may.
func (f *Figures) take(kind string, obj client.Object) (heartbeat.Summary, bool, time.Duration) {
	k := resourceKey(kind, obj)
	s, ok := f.agg.Summary(k)
	if !ok {
		return s, false, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if wait := f.interval - time.Since(f.last[k]); wait > 0 {
		return s, false, wait
	}
	f.last[k] = time.Now()
	return s, true, 0
}

// Summary is what the heartbeats of a resource add up to now.
func (f *Figures) Summary(kind string, obj client.Object) (heartbeat.Summary, bool) {
	return f.agg.Summary(resourceKey(kind, obj))
}

func resourceKey(kind string, obj client.Object) heartbeat.ResourceKey {
	return heartbeat.ResourceKey{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID())}
}

// forget drops what is kept of a resource being deleted. Without figures there is nothing to drop.
func (f *Figures) forget(kind string, obj client.Object) {
	if f == nil {
		return
	}
	k := resourceKey(kind, obj)
	f.agg.Forget(k)
	f.mu.Lock()
	delete(f.last, k)
	f.mu.Unlock()
}

// forgetGone drops what is kept of a resource already gone from the API server, whose UID can no longer be
// read: every UID it had under that name. Late beats of its terminating pods bring it back, but each also
// wakes its reconciler, which finds it gone and forgets it again.
func (f *Figures) forgetGone(kind string, name types.NamespacedName) {
	if f == nil {
		return
	}
	f.agg.ForgetObject(kind, name.Namespace, name.Name)
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.last {
		if k.Kind == kind && k.Namespace == name.Namespace && k.Name == name.Name {
			delete(f.last, k)
		}
	}
}

func drops(d heartbeat.Drops) v1alpha1.Drops {
	return v1alpha1.Drops{
		KernelRing: int64(d.KernelRing), Interface: int64(d.Interface), SensorQueue: int64(d.SensorQueue),
		KafkaProduce: int64(d.KafkaProduce), Total: int64(d.Total()),
	}
}

// lastDegraded is the message of a Ready condition that says Degraded, or "". The conditions are
// rewritten only when a pass ends: between figures, these are still the last pass's.
func lastDegraded(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil && c.Reason == ReasonDegraded {
		return c.Message
	}
	return ""
}

func percent(ratio float64) string { return fmt.Sprintf("%.2f%%", 100*ratio) }

func rate(v float64) int64 { return int64(math.Round(v)) }

// sensorFigures writes a sensor's traffic and losses into its status, and says whether it is degraded.
func sensorFigures(st *v1alpha1.CaptureSensorStatus, s heartbeat.Summary, thresholdPercent int32) (degraded string) {
	st.PacketsPerSecond = rate(s.Rates.Packets)
	st.BytesPerSecond = rate(s.Rates.Bytes)
	d := drops(s.Totals.Drops)
	st.Drops = &d
	st.DropPercent = percent(s.DropRatio)
	st.PerNode = st.PerNode[:0]
	var silent []string
	for _, n := range s.Nodes {
		ns := v1alpha1.NodeCaptureStatus{
			Node: n.Node, PacketsPerSecond: rate(n.Rates.Packets), BytesPerSecond: rate(n.Rates.Bytes), Drops: drops(n.Drops),
		}
		if !n.LastHeartbeat.IsZero() {
			t := metav1.NewTime(n.LastHeartbeat.Truncate(time.Second))
			ns.LastHeartbeat = &t
		}
		st.PerNode = append(st.PerNode, ns)
		if n.Stale {
			silent = append(silent, n.Node)
		}
	}
	switch {
	case len(silent) > 0:
		sort.Strings(silent)
		return fmt.Sprintf("no heartbeat from the sensor on %v", silent)
	case 100*s.DropRatio > float64(thresholdPercent):
		return fmt.Sprintf("dropping %s of packets, above the %d%% threshold (kernel ring %d, interface %d, sensor queue %d, Kafka %d so far)",
			percent(s.DropRatio), thresholdPercent, d.KernelRing, d.Interface, d.SensorQueue, d.KafkaProduce)
	}
	return ""
}

// replayFigures writes a replay's progress into its status.
func replayFigures(st *v1alpha1.ReplayJobStatus, s heartbeat.Summary) {
	p := s.Progress
	st.PacketsSent = int64(s.Totals.Packets)
	st.BytesSent = int64(s.Totals.Bytes)
	st.PacketsTotal = int64(p.PacketsTotal)
	st.PacketsPerSecond = rate(s.Rates.PacketsDone)
	st.Failed = int64(s.Totals.Failed)
	st.Truncated = int64(s.Totals.Truncated)
	if p.Percent >= 0 {
		st.Progress = fmt.Sprintf("%d%%", int(math.Floor(p.Percent)))
	}
}

// collectorFigures writes a FlowCollector's figures into its status: records decoded per second, the
// exporters its pods heard from, the sequence gaps and template errors since they started.
func collectorFigures(st *v1alpha1.FlowCollectorStatus, s heartbeat.Summary) {
	st.RecordsPerSecond = rate(s.Rates.RecordsIn)
	st.Exporters = s.Totals.Exporters
	st.SequenceGaps = int64(s.Totals.SequenceGaps)
	st.TemplateErrors = int64(s.Totals.DecodeErrors)
	st.FlowsWritten = int64(s.Totals.FlowsWritten)
	st.Drops = int64(s.Totals.Drops.SensorQueue)
	st.SinkErrors = int64(s.Totals.SinkErrors)
}

// pipelineFigures writes a pipeline's throughput, lag and errors into its status, and says whether it is
// degraded: a processor that keeps retrying a failure (its heartbeat's problem; the worst nodes come
// first) is running but not doing its job.
func pipelineFigures(st *v1alpha1.PacketPipelineStatus, s heartbeat.Summary) (degraded string) {
	st.RecordsInPerSecond = rate(s.Rates.RecordsIn)
	st.RecordsOutPerSecond = rate(s.Rates.RecordsOut)
	st.ConsumerLag = s.Totals.ConsumerLag
	st.DecodeErrors = int64(s.Totals.DecodeErrors)
	st.Filtered = int64(s.Totals.Filtered)
	st.SinkErrors = int64(s.Totals.SinkErrors)
	st.Errors = st.DecodeErrors + st.SinkErrors
	st.ActiveFlows = s.Totals.FlowsActive
	var troubled []string
	for _, n := range s.Nodes {
		if n.Problem != "" {
			troubled = append(troubled, n.Node)
		}
	}
	if len(troubled) == 0 {
		return ""
	}
	first := s.Nodes[0] // worst first: a node with a problem comes before those without
	msg := fmt.Sprintf("the processor on %s retries a failure: %s", first.Node, first.Problem)
	if len(troubled) > 1 {
		msg += fmt.Sprintf(" (and on %d more nodes: %v)", len(troubled)-1, troubled[1:])
	}
	return msg
}
