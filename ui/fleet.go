package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// Resource names as RBAC knows them.
const (
	resSensors   = "capturesensors"
	resPipelines = "packetpipelines"
	resReplays   = "replayjobs"
)

// fleetItem is one resource as the fleet page shows it: its name and its status as the operator wrote it.
type fleetItem struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    any    `json:"status"`
	// Sensor is what a pipeline stores its data under (PacketPipeline only).
	Sensor string `json:"sensor,omitempty"`
}

// Fleet is what one caller may see of the three kinds.
type Fleet struct {
	Sensors   []fleetItem `json:"sensors"`
	Pipelines []fleetItem `json:"pipelines"`
	Replays   []fleetItem `json:"replays"`
	// Hidden counts the resources the caller may not list. Not sent: how many resources other
	// namespaces hold is not the caller's business either.
	Hidden int `json:"-"`
}

// fleetWatch keeps the three kinds in an informer cache and tells subscribers when any changed.
type fleetWatch struct {
	cache ctrlcache.Cache

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func newFleetWatch(ctx context.Context, c ctrlcache.Cache) (*fleetWatch, error) {
	w := &fleetWatch{cache: c, subs: map[chan struct{}]struct{}{}}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.changed() },
		UpdateFunc: func(any, any) { w.changed() },
		DeleteFunc: func(any) { w.changed() },
	}
	for _, obj := range []client.Object{&v1alpha1.CaptureSensor{}, &v1alpha1.PacketPipeline{}, &v1alpha1.ReplayJob{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(notify); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// changed wakes every subscriber without blocking: a subscriber that has not yet sent the last change
// will send the state as it is when it does.
func (w *fleetWatch) changed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *fleetWatch) subscribe() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

// snapshot is the fleet as c may list it: per namespace and kind, a SubjectAccessReview for list.
func (s *Server) snapshot(ctx context.Context, c *caller) (Fleet, error) {
	f := Fleet{Sensors: []fleetItem{}, Pipelines: []fleetItem{}, Replays: []fleetItem{}}
	may := func(resource, ns string) (bool, error) {
		return s.auth.allowed(ctx, c, access{verb: "list", resource: resource, namespace: ns})
	}
	var sensors v1alpha1.CaptureSensorList
	if err := s.fleet.cache.List(ctx, &sensors); err != nil {
		return f, err
	}
	for i := range sensors.Items {
		o := &sensors.Items[i]
		ok, err := may(resSensors, o.Namespace)
		if err != nil {
			return f, err
		}
		if !ok {
			f.Hidden++
			continue
		}
		f.Sensors = append(f.Sensors, fleetItem{Namespace: o.Namespace, Name: o.Name, Status: o.Status})
	}
	var pipes v1alpha1.PacketPipelineList
	if err := s.fleet.cache.List(ctx, &pipes); err != nil {
		return f, err
	}
	for i := range pipes.Items {
		o := &pipes.Items[i]
		ok, err := may(resPipelines, o.Namespace)
		if err != nil {
			return f, err
		}
		if !ok {
			f.Hidden++
			continue
		}
		f.Pipelines = append(f.Pipelines, fleetItem{Namespace: o.Namespace, Name: o.Name, Status: o.Status, Sensor: storedSensor(o)})
	}
	var replays v1alpha1.ReplayJobList
	if err := s.fleet.cache.List(ctx, &replays); err != nil {
		return f, err
	}
	for i := range replays.Items {
		o := &replays.Items[i]
		ok, err := may(resReplays, o.Namespace)
		if err != nil {
			return f, err
		}
		if !ok {
			f.Hidden++
			continue
		}
		f.Replays = append(f.Replays, fleetItem{Namespace: o.Namespace, Name: o.Name, Status: o.Status})
	}
	for _, l := range [][]fleetItem{f.Sensors, f.Pipelines, f.Replays} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Namespace != l[j].Namespace {
				return l[i].Namespace < l[j].Namespace
			}
			return l[i].Name < l[j].Name
		})
	}
	return f, nil
}

// storedSensor is the name a pipeline's processors store packets and flows under: the sensor it reads,
// else its topic (what `capfleet process` defaults --sensor to).
func storedSensor(pp *v1alpha1.PacketPipeline) string {
	switch {
	case pp.Spec.Source.Sensor != "":
		return pp.Spec.Source.Sensor
	case pp.Spec.Source.Topic != "":
		return pp.Spec.Source.Topic
	}
	return pp.Status.SourceTopic
}

// handleFleet answers GET /api/fleet with one snapshot.
func (s *Server) handleFleet(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticated(w, r)
	if !ok {
		return
	}
	f, err := s.snapshot(r.Context(), c)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	if f.refused() {
		httpError(w, http.StatusForbidden, fmt.Errorf("user %q may not list any CaptureSensor, PacketPipeline or ReplayJob there is", c.user.Username))
		return
	}
	writeJSON(w, f)
}

// refused says the caller may list none of the resources there are: the request is refused rather
// than answered with an empty fleet that would hide why.
func (f Fleet) refused() bool {
	return f.Hidden > 0 && len(f.Sensors)+len(f.Pipelines)+len(f.Replays) == 0
}

// handleEvents answers GET /api/events with server-sent events: a "fleet" event with the whole snapshot
// now and after every change the watches report (at most one every 250 ms), and a comment every 15 s
// so proxies keep the stream open.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticated(w, r)
	if !ok {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, fmt.Errorf("streaming unsupported"))
		return
	}
	if f, err := s.snapshot(r.Context(), c); err == nil && f.refused() {
		httpError(w, http.StatusForbidden, fmt.Errorf("user %q may not list any CaptureSensor, PacketPipeline or ReplayJob there is", c.user.Username))
		return
	}
	ch, done := s.fleet.subscribe()
	defer done()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	send := func() bool {
		// The token is reviewed again (at most every reviewTTL), so one that expires or is revoked ends
		// the stream rather than watching on.
		if _, code, err := s.auth.authenticate(r); err != nil {
			fmt.Fprintf(w, "event: problem\ndata: %q\n\n", fmt.Sprintf("%d: %v", code, err))
			fl.Flush()
			return false
		}
		f, err := s.snapshot(r.Context(), c)
		if err != nil {
			fmt.Fprintf(w, "event: problem\ndata: %q\n\n", err.Error())
		} else {
			b, _ := json.Marshal(f)
			fmt.Fprintf(w, "event: fleet\ndata: %s\n\n", b)
		}
		fl.Flush()
		return r.Context().Err() == nil
	}
	if !send() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			fl.Flush()
		case <-ch:
			// Coalesce bursts: the operator writes statuses of many resources in one pass.
			select {
			case <-time.After(250 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			if !send() {
				return
			}
		}
	}
}
