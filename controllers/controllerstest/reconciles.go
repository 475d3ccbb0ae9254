package controllerstest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Reconciles counts, for each object and controller, the reconciles that began and those that ended, from
// what controller-runtime logs of each (at V(5), tagged with the controller and the object). A reconcile that
// finds nothing to do writes nothing, so this is the one sign that it ran at all: a test that checks what did
// not happen waits for it first, lest it pass only because the operator had not come round yet.
type Reconciles struct {
	mu           sync.Mutex
	begun, ended map[reconcileKey]int
}

type reconcileKey struct{ controller, namespace, name string }

func newReconciles() *Reconciles {
	return &Reconciles{begun: map[reconcileKey]int{}, ended: map[reconcileKey]int{}}
}

// After makes a change and waits until a reconcile of obj by controller (its name, as "capturesensor") that
// began after the change began has ended, whatever it decided.
func (r *Reconciles) After(t testing.TB, controller string, obj client.Object, change func()) {
	t.Helper()
	k := reconcileKey{controller, obj.GetNamespace(), obj.GetName()}
	r.mu.Lock()
	n := r.begun[k]
	r.mu.Unlock()
	change()
	// Reconciles of one object never overlap, so they end in the order they began: the (n+1)th to end is the
	// first to begin after the change did.
	Eventually(t, "a reconcile of "+k.namespace+"/"+k.name+" by "+controller+" begun after the change", func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.ended[k] <= n {
			return errors.New("none ended yet")
		}
		return nil
	})
}

func (r *Reconciles) observe(k reconcileKey, msg string) {
	var m map[reconcileKey]int
	switch {
	case msg == "Reconciling":
		m = r.begun
	case msg == "Reconcile successful", msg == "Reconciler error", strings.HasPrefix(msg, "Reconcile done"):
		m = r.ended
	default:
		return
	}
	r.mu.Lock()
	m[k]++
	r.mu.Unlock()
}

// sink passes everything to next, and counts the reconciles on the way.
func (r *Reconciles) sink(next logr.LogSink) logr.LogSink { return countingSink{LogSink: next, r: r} }

// countingSink carries the values a logger was given, as far as they name a controller and an object.
type countingSink struct {
	logr.LogSink
	r   *Reconciles
	key reconcileKey
}

// Enabled lets every level through to Info, which counts and then passes on only what next would log.
func (s countingSink) Enabled(int) bool { return true }

func (s countingSink) Info(level int, msg string, kv ...any) {
	s.r.observe(s.key, msg)
	if s.LogSink.Enabled(level) {
		s.LogSink.Info(level, msg, kv...)
	}
}

func (s countingSink) Error(err error, msg string, kv ...any) {
	s.r.observe(s.key, msg)
	s.LogSink.Error(err, msg, kv...)
}

func (s countingSink) WithValues(kv ...any) logr.LogSink {
	for i := 0; i+1 < len(kv); i += 2 {
		v, _ := kv[i+1].(string)
		switch kv[i] {
		case "controller":
			s.key.controller = v
		case "namespace":
			s.key.namespace = v
		case "name":
			s.key.name = v
		}
	}
	s.LogSink = s.LogSink.WithValues(kv...)
	return s
}

func (s countingSink) WithName(name string) logr.LogSink {
	s.LogSink = s.LogSink.WithName(name)
	return s
}
