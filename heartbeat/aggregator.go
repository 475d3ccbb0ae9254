package heartbeat

import (
	"sort"
	"sync"
	"time"
)

// ResourceKey names one resource object. The UID is part of it: a resource
// deleted and created again under the same name starts from nothing, and late
// beats from the old object's pods cannot mix into the new one's figures.
type ResourceKey struct {
	Kind, Namespace, Name, UID string
}

// KeyOf is the resource a beat is about.
func KeyOf(b *Beat) ResourceKey {
	return ResourceKey{Kind: b.Kind, Namespace: b.Namespace, Name: b.Name, UID: b.UID}
}

// Options bound the Aggregator's view; zero fields take the defaults.
type Options struct {
	// Window is the span rates are computed over (default 15s: three beats at
	// the default interval, so a status settles 15s after traffic changes).
	// It is also limited by MaxSamples beats of each pod.
	Window time.Duration
	// MaxSamples is how many beats of each pod are kept (default 8: 35s at 5s beats).
	MaxSamples int
	// StaleAfter is how long a pod that does not announce its interval may be
	// silent before it counts as stale (default 15s); a pod that announces one
	// is stale after three of its intervals.
	StaleAfter time.Duration
	// ForgetAfter drops a silent pod (default 5m); its counts stay in the
	// resource's totals.
	ForgetAfter time.Duration
	// IdleResourceAfter drops a resource none of whose pods has beaten for
	// that long (default 1h), so deleted resources do not stay in memory.
	IdleResourceAfter time.Duration
	// MaxNodes bounds Summary.Nodes (default 20), worst first.
	MaxNodes int
	// Now is the operator's clock (tests set it).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Window, 15*time.Second)
	def(&o.StaleAfter, 15*time.Second)
	def(&o.ForgetAfter, 5*time.Minute)
	def(&o.IdleResourceAfter, time.Hour)
	if o.MaxSamples < 2 {
		o.MaxSamples = 8
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Aggregator folds beats into per-resource figures. It is safe for
// concurrent use; its memory is O(MaxSamples) per pod heard from within
// ForgetAfter, plus one Counters per resource.
type Aggregator struct {
	opt Options

	mu     sync.Mutex
	res    map[ResourceKey]*resource
	dirty  map[ResourceKey]struct{}
	notify chan struct{}
	stats  AggregatorStats
}

// AggregatorStats count what the Aggregator was fed.
type AggregatorStats struct {
	Resources, Pods int
	Beats           uint64 // observed and used
	Ignored         uint64 // duplicates and late beats of an earlier run
	BadRecords      uint64 // records on the stats topic that are not beats
}

type resource struct {
	pods     map[string]*pod
	departed Counters // monotonic counts of the pods already forgotten
	lastSeen time.Time
	// progress is kept from the last pods forgotten, so a finished
	// replay still reports 100% after its pod is gone.
	progress Progress
}

type sample struct {
	at int64 // pod clock, Unix nanoseconds
	c  Counters
}

type pod struct {
	node      string
	startedAt time.Time
	seq       uint64
	interval  time.Duration
	lastSeen  time.Time // operator clock
	lastBeat  time.Time // pod clock
	exited    bool
	problem   string   // of the newest beat
	stale     bool     // as last reported by Sweep or Observe
	base      Counters // monotonic counts of this pod's earlier series
	samples   []sample // oldest first, at most MaxSamples: the current series only
}

// NewAggregator returns an empty Aggregator.
func NewAggregator(opt Options) *Aggregator {
	return &Aggregator{
		opt:    opt.withDefaults(),
		res:    map[ResourceKey]*resource{},
		dirty:  map[ResourceKey]struct{}{},
		notify: make(chan struct{}, 1),
	}
}

// Observe takes one beat; it reports false when the beat was ignored (a
// duplicate, or a late beat from an earlier run of the pod).
func (a *Aggregator) Observe(b Beat) bool {
	now := a.opt.Now()
	key := KeyOf(&b)
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.res[key]
	if r == nil {
		r = &resource{pods: map[string]*pod{}}
		a.res[key] = r
	}
	p := r.pods[b.Pod]
	if p == nil {
		p = &pod{samples: make([]sample, 0, a.opt.MaxSamples)}
		r.pods[b.Pod] = p
		p.restart(b)
	} else if !p.observe(b) {
		a.stats.Ignored++
		return false
	}
	p.node, p.interval, p.lastSeen, p.lastBeat = b.Node, time.Duration(b.IntervalMS)*time.Millisecond, now, b.Time
	p.exited, p.stale, p.problem = b.Final, false, b.Problem
	p.push(sample{at: b.Time.UnixNano(), c: b.Counters}, a.opt.MaxSamples)
	r.lastSeen = now
	a.stats.Beats++
	a.markLocked(key)
	return true
}

// observe moves p to beat b's series; false means b is to be ignored.
func (p *pod) observe(b Beat) bool {
	switch {
	case b.StartedAt.Before(p.startedAt):
		return false // a late beat from an earlier run: its counts are in base already
	case b.StartedAt.After(p.startedAt):
		// A new process: every count starts again from zero.
		p.base.addCounters(p.latest().c)
		p.restart(b)
		return true
	case b.Seq <= p.seq:
		return false
	}
	last := p.latest()
	p.seq = b.Seq
	// Same process, yet a counter went back: fold just those counters, so the
	// others are not counted twice.
	back := false
	lf, bf, basef := last.c.counterFields(), b.Counters.counterFields(), p.base.counterFields()
	for i := range lf {
		if *bf[i] < *lf[i] {
			*basef[i] += *lf[i]
			back = true
		}
	}
	// Either that or a clock step back would make a negative or spiking rate:
	// the rate starts over from this beat.
	if back || b.Time.UnixNano() <= last.at {
		p.samples = p.samples[:0]
	}
	return true
}

// restart begins a new series at b.
func (p *pod) restart(b Beat) {
	p.startedAt, p.seq = b.StartedAt, b.Seq
	p.samples = p.samples[:0]
}

func (p *pod) push(s sample, max int) {
	if len(p.samples) == max {
		copy(p.samples, p.samples[1:])
		p.samples = p.samples[:max-1]
	}
	p.samples = append(p.samples, s)
}

func (p *pod) latest() sample {
	if len(p.samples) == 0 {
		return sample{}
	}
	return p.samples[len(p.samples)-1]
}

// cumulative is every count of the pod since the operator first heard of
// it, across restarts; gauges are the latest.
func (p *pod) cumulative() Counters {
	c := p.latest().c
	c.addCounters(p.base)
	return c
}

func (p *pod) staleAt(now time.Time, def time.Duration) bool {
	after := def
	if p.interval > 0 {
		after = 3 * p.interval
	}
	return !p.exited && now.Sub(p.lastSeen) > after
}

func (a *Aggregator) markLocked(k ResourceKey) {
	a.dirty[k] = struct{}{}
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// Notify receives a value when some resource has changed since the last
// TakeChanged (coalesced: one value for any number of changes).
func (a *Aggregator) Notify() <-chan struct{} { return a.notify }

// TakeChanged returns the resources that changed (new beats, pods turning
// stale or forgotten) since the last call, and clears the set.
func (a *Aggregator) TakeChanged() []ResourceKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ResourceKey, 0, len(a.dirty))
	for k := range a.dirty {
		out = append(out, k)
		delete(a.dirty, k)
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i], out[j]) })
	return out
}

func keyLess(a, b ResourceKey) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.UID < b.UID
}

// Sweep marks pods stale, forgets pods silent for ForgetAfter and resources
// idle for IdleResourceAfter, and flags the resources that changed by it.
// Call it every few seconds: silence produces no beat to react to.
func (a *Aggregator) Sweep() {
	now := a.opt.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, r := range a.res {
		for name, p := range r.pods {
			if now.Sub(p.lastSeen) > a.opt.ForgetAfter {
				r.forget(name, p, a.opt)
				a.markLocked(k)
				continue
			}
			if s := p.staleAt(now, a.opt.StaleAfter); s != p.stale {
				p.stale = s
				a.markLocked(k)
			}
		}
		if len(r.pods) == 0 && now.Sub(r.lastSeen) > a.opt.IdleResourceAfter {
			delete(a.res, k)
			delete(a.dirty, k)
		}
	}
}

func (r *resource) forget(name string, p *pod, opt Options) {
	if len(r.pods) == 1 {
		r.progress = r.summary(ResourceKey{}, opt, opt.Now()).Progress
	}
	r.departed.addCounters(p.cumulative())
	delete(r.pods, name)
}

// Forget drops a resource at once (the operator saw it deleted).
func (a *Aggregator) Forget(k ResourceKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.res, k)
	delete(a.dirty, k)
}

// ForgetObject drops every resource of that kind, namespace and name, whatever its UID. The operator calls it
// once the object is gone from the API server: its UID can no longer be read, and no live object of that name
// is left for the figures to describe.
func (a *Aggregator) ForgetObject(kind, namespace, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.res {
		if k.Kind == kind && k.Namespace == namespace && k.Name == name {
			delete(a.res, k)
			delete(a.dirty, k)
		}
	}
}

// Stats reports the Aggregator's size and intake.
func (a *Aggregator) Stats() AggregatorStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Resources = len(a.res)
	for _, r := range a.res {
		s.Pods += len(r.pods)
	}
	return s
}

func (a *Aggregator) badRecord() {
	a.mu.Lock()
	a.stats.BadRecords++
	a.mu.Unlock()
}

// Summary is what the Aggregator knows of resource k now; false when it has
// never heard of it (or forgot it).
func (a *Aggregator) Summary(k ResourceKey) (Summary, bool) {
	now := a.opt.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.res[k]
	if r == nil {
		return Summary{}, false
	}
	return r.summary(k, a.opt, now), true
}
