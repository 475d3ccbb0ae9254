package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/processor/store"
	"capfleet.dev/capfleet/query"
)

// The data pages read what a PacketPipeline stored. Every such request names the pipeline (ns, pipeline);
// the caller must be allowed to get it, and the pipeline tells the keyspace and the sensor name its
// processors store under, so a caller sees exactly one pipeline's data per request.

// pipelineData is a request's pipeline and its reader.
type pipelineData struct {
	pp     *v1alpha1.PacketPipeline
	sensor string
	reader *store.Reader
}

// pipelineFor authenticates r, checks the caller may get the pipeline it names and returns a reader on
// the pipeline's keyspace. On failure it has answered r.
// dataRequest is how every data endpoint starts: the pipeline the caller may read and the time range
// asked for; ok is false when the answer (401, 403, 400...) has been written.
func (s *Server) dataRequest(w http.ResponseWriter, r *http.Request) (d *pipelineData, from, to time.Time, ok bool) {
	if d, ok = s.pipelineFor(w, r); !ok {
		return nil, from, to, false
	}
	from, to, err := timeRange(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return nil, from, to, false
	}
	return d, from, to, true
}

func (s *Server) pipelineFor(w http.ResponseWriter, r *http.Request) (*pipelineData, bool) {
	c, ok := s.authenticated(w, r)
	if !ok {
		return nil, false
	}
	ns, name := r.URL.Query().Get("ns"), r.URL.Query().Get("pipeline")
	if ns == "" || name == "" {
		httpError(w, http.StatusBadRequest, errors.New("ns and pipeline are required: the PacketPipeline whose data to read"))
		return nil, false
	}
	allowed, err := s.auth.allowed(r.Context(), c, access{verb: "get", resource: resPipelines, namespace: ns, name: name})
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("the API server could not review access: %w", err))
		return nil, false
	}
	if !allowed {
		httpError(w, http.StatusForbidden, fmt.Errorf("user %q may not get packetpipelines %s/%s, whose data this is", c.user.Username, ns, name))
		return nil, false
	}
	pp := &v1alpha1.PacketPipeline{}
	if err := s.fleet.cache.Get(r.Context(), types.NamespacedName{Namespace: ns, Name: name}, pp); err != nil {
		if apierrors.IsNotFound(err) {
			httpError(w, http.StatusNotFound, fmt.Errorf("no PacketPipeline %s/%s", ns, name))
		} else {
			httpError(w, http.StatusServiceUnavailable, err)
		}
		return nil, false
	}
	if pp.Spec.Sinks.Cassandra == nil {
		httpError(w, http.StatusNotFound, fmt.Errorf("PacketPipeline %s/%s stores nothing in Cassandra", ns, name))
		return nil, false
	}
	ks := pp.Spec.Sinks.Cassandra.Keyspace
	if ks == "" {
		ks = query.DefaultKeyspace
	}
	sess, err := s.sessions.get(ks)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("Cassandra keyspace %s: %w", ks, err))
		return nil, false
	}
	rd := store.NewReader(sess)
	// A block that cannot be read is left out of the answer, as the CLI does with a warning.
	rd.OnSkip = func(key string, err error) { s.log.Info("skipped an unreadable block", "key", key, "err", err.Error()) }
	return &pipelineData{pp: pp, sensor: storedSensor(pp), reader: rd}, true
}

// sessions keeps one Cassandra session per keyspace.
type sessions struct {
	cluster func() (*gocql.ClusterConfig, error)
	mu      sync.Mutex
	open    map[string]*gocql.Session
}

func (ss *sessions) get(ks string) (*gocql.Session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.open[ks]; s != nil {
		return s, nil
	}
	cl, err := ss.cluster()
	if err != nil {
		return nil, err
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		return nil, err
	}
	ss.open[ks] = s
	return s, nil
}

func (ss *sessions) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.open {
		s.Close()
		delete(ss.open, k)
	}
}

// timeRange reads from and to (RFC 3339 or epoch seconds, as the CLI's --from/--to); to defaults to now.
func timeRange(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	if q.Get("from") == "" {
		return time.Time{}, time.Time{}, errors.New("from is required (RFC 3339 or seconds since the epoch)")
	}
	from, err := query.ParseTime(q.Get("from"))
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("from: %w", err)
	}
	to := time.Now()
	if q.Get("to") != "" {
		if to, err = query.ParseTime(q.Get("to")); err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("to: %w", err)
		}
	}
	if to.Before(from) {
		return time.Time{}, time.Time{}, errors.New("to is before from")
	}
	// One request must not make the UI read months of flows into memory.
	if to.Sub(from) > maxRange {
		return time.Time{}, time.Time{}, fmt.Errorf("the range is %s, at most %s per request", to.Sub(from).Round(time.Second), maxRange)
	}
	return from, to, nil
}

const maxRange = 7 * 24 * time.Hour

// A flow search returns at most this many flows (limit), the largest.
const (
	defaultFlows = 500
	maxFlows     = 5000
)

// handleGraph answers GET /api/graph: query.BuildGraph of the pipeline's flows, in the node-link JSON
// of `query graph -o json`.
func (s *Server) handleGraph(w http.ResponseWriter, r *http.Request) {
	d, from, to, ok := s.dataRequest(w, r)
	if !ok {
		return
	}
	window, err := durationParam(r, "window")
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	minBytes, err := uintParam(r, "minBytes")
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	flows, err := query.SensorFlows(r.Context(), d.reader, d.sensor, from, to)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := query.BuildGraph(flows, window, minBytes).WriteJSON(w); err != nil {
		s.log.Error(err, "writing the graph")
	}
}

// handleTop answers GET /api/top: query.Top of the pipeline's flows.
func (s *Server) handleTop(w http.ResponseWriter, r *http.Request) {
	d, from, to, ok := s.dataRequest(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	group, by := orDefault(q.Get("group"), query.ByHost), orDefault(q.Get("by"), "bytes")
	n, err := uintParam(r, "n")
	if err != nil || n > 1000 {
		httpError(w, http.StatusBadRequest, fmt.Errorf("n: want 0 to 1000"))
		return
	}
	if n == 0 {
		n = 20
	}
	flows, err := query.SensorFlows(r.Context(), d.reader, d.sensor, from, to)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	top, err := query.Top(flows, group, by, int(n))
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, top)
}

// handleFlows answers GET /api/flows: the flow search of `query flows` (ip, port, proto, time), at most
// limit flows, most IP bytes first; X-Capfleet-Truncated says when more matched.
func (s *Server) handleFlows(w http.ResponseWriter, r *http.Request) {
	d, from, to, ok := s.dataRequest(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	search := query.FlowSearch{From: from, To: to, Proto: q.Get("proto"), Sensor: d.sensor}
	if ip := strings.TrimSpace(q.Get("ip")); ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("ip %q is not an address", ip))
			return
		}
		search.IP = addr.Unmap()
	}
	port, err := uintParam(r, "port")
	if err != nil || port > 65535 {
		httpError(w, http.StatusBadRequest, fmt.Errorf("port %q is not a port", q.Get("port")))
		return
	}
	search.Port = int(port)
	limit, err := uintParam(r, "limit")
	if err != nil || limit > maxFlows {
		httpError(w, http.StatusBadRequest, fmt.Errorf("limit: want 1 to %d", maxFlows))
		return
	}
	if limit == 0 {
		limit = defaultFlows
	}
	flows, err := query.SearchFlows(r.Context(), d.reader, search)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	// Most IP bytes first, as `query flows` prints them in the README's examples; ties by start.
	sort.SliceStable(flows, func(i, j int) bool {
		bi, bj := flows[i].OrigIPBytes+flows[i].RespIPBytes, flows[j].OrigIPBytes+flows[j].RespIPBytes
		if bi != bj {
			return bi > bj
		}
		return flows[i].Start.Before(flows[j].Start)
	})
	if uint64(len(flows)) > limit {
		flows = flows[:limit]
		w.Header().Set("X-Capfleet-Truncated", "true")
	}
	out := make([]store.FlowJSON, 0, len(flows))
	for i := range flows {
		out = append(out, flows[i].JSON())
	}
	writeJSON(w, out)
}

// handlePcap answers GET /api/pcap?flow=UID: the packets of that flow, as `query packets --flow`.
func (s *Server) handlePcap(w http.ResponseWriter, r *http.Request) {
	d, from, to, ok := s.dataRequest(w, r)
	if !ok {
		return
	}
	id := r.URL.Query().Get("flow")
	if id == "" {
		httpError(w, http.StatusBadRequest, errors.New("flow is required: a flow's uid or Community ID"))
		return
	}
	started := false
	_, err := query.FlowPackets(r.Context(), d.reader, d.sensor, id, from, to, w, func(f store.Flow, format string) {
		started = true
		ct := "application/vnd.tcpdump.pcap"
		if format == "pcapng" {
			ct = "application/x-pcapng"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="flow-%s.%s"`, safeName(f.UID), format))
		w.Header().Set("Cache-Control", "no-store")
	})
	if err != nil && !started {
		httpError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		// The headers went out; a cut-off body is all that can say it failed.
		s.log.Error(err, "writing a flow's packets", "flow", id)
		panic(http.ErrAbortHandler)
	}
}

// handleTraffic answers GET /api/traffic: the pipeline's sensor's stored traffic counters in steps of
// step (default 1s), as `query traffic` prints them.
func (s *Server) handleTraffic(w http.ResponseWriter, r *http.Request) {
	d, from, to, ok := s.dataRequest(w, r)
	if !ok {
		return
	}
	step, err := durationParam(r, "step")
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	if step == 0 {
		step = time.Second
	}
	if to.Sub(from)/step > maxTrafficPoints {
		httpError(w, http.StatusBadRequest, fmt.Errorf("%s in steps of %s is more than %d points: take a longer step", to.Sub(from), step, maxTrafficPoints))
		return
	}
	points, err := query.Traffic(r.Context(), d.reader, d.sensor, from, to, step)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	if points == nil {
		points = []query.TrafficPoint{}
	}
	writeJSON(w, points)
}

// maxTrafficPoints bounds one traffic answer: a day in seconds, what a chart can still draw.
const maxTrafficPoints = 86400

func durationParam(r *http.Request, name string) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration such as 1m", name, v)
	}
	return d, nil
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a whole number", name, v)
	}
	return n, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// safeName keeps a uid usable as a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
