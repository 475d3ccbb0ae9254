package heartbeat

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// DefaultTopic is the stats topic the operator creates and consumes.
const DefaultTopic = "capfleet.stats"

// DefaultInterval is how often a workload beats.
const DefaultInterval = 5 * time.Second

// Environment the operator sets on every workload pod.
const (
	EnvKind      = "CAPFLEET_RESOURCE_KIND"
	EnvNamespace = "CAPFLEET_RESOURCE_NAMESPACE"
	EnvName      = "CAPFLEET_RESOURCE_NAME"
	EnvUID       = "CAPFLEET_RESOURCE_UID"
	EnvPod       = "POD_NAME"
	EnvNode      = "NODE_NAME"
)

// processStart tells this process's beats from an earlier run of the same pod.
var processStart = time.Now()

// Config says where and as whom a workload beats.
type Config struct {
	Topic     string
	Interval  time.Duration
	Kind      string
	Namespace string
	Name      string
	UID       string
	Pod       string
	Node      string
	// Problem, when set, is asked at every beat for Beat.Problem.
	Problem func() string
}

// DefaultConfig is the configuration flags start from: identity from the
// CAPFLEET_RESOURCE_* environment (kind defaulting to the workload's own),
// pod and node from POD_NAME and NODE_NAME (the host name when unset).
func DefaultConfig(kind string) Config {
	host, _ := os.Hostname()
	return Config{
		Topic:     DefaultTopic,
		Interval:  DefaultInterval,
		Kind:      envOr(EnvKind, kind),
		Namespace: os.Getenv(EnvNamespace),
		Name:      os.Getenv(EnvName),
		UID:       os.Getenv(EnvUID),
		Pod:       envOr(EnvPod, host),
		Node:      envOr(EnvNode, host),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// AddFlags registers --stats-topic, --heartbeat-interval and the
// --resource-* identity flags (defaults from the environment).
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Topic, "stats-topic", c.Topic, "Kafka topic for heartbeats (\"\" turns them off)")
	fs.DurationVar(&c.Interval, "heartbeat-interval", c.Interval, "how often to publish a heartbeat")
	fs.StringVar(&c.Kind, "resource-kind", c.Kind, "kind of the resource this pod serves (env "+EnvKind+")")
	fs.StringVar(&c.Namespace, "resource-namespace", c.Namespace, "namespace of the resource this pod serves (env "+EnvNamespace+")")
	fs.StringVar(&c.Name, "resource-name", c.Name, "name of the resource this pod serves; heartbeats are off without it (env "+EnvName+")")
	fs.StringVar(&c.UID, "resource-uid", c.UID, "UID of the resource this pod serves (env "+EnvUID+")")
}

// Enabled is whether beats are wanted: a pod run by hand, serving no
// resource, has nobody to report to.
func (c Config) Enabled() bool { return c.Name != "" && c.Topic != "" }

// Validate reports flags that cannot make a beat the operator accepts.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.Interval < 100*time.Millisecond {
		return fmt.Errorf("--heartbeat-interval %s is below 100ms", c.Interval)
	}
	b := Beat{Kind: c.Kind, Namespace: c.Namespace, Name: c.Name, Pod: c.Pod, Time: processStart, StartedAt: processStart}
	if err := b.check(); err != nil {
		return fmt.Errorf("resource identity (--resource-* or %s..., %s): %w", EnvKind, EnvPod, err)
	}
	return nil
}

// processSeq numbers the beats of this process (processStart), whichever publisher sends them: a workload
// that reports its failure through a publisher of its own after its run's last beat must not look like a
// late duplicate to the aggregator, which drops a beat whose number it has seen.
var processSeq atomic.Uint64

// queueBeats bounds the beats a Publisher's own client holds while Kafka is
// away: later beats carry the same counters, so old ones are worth little.
const queueBeats = 8

// Publisher beats a snapshot of the workload's counters to the stats topic.
// It never blocks the workload: a beat Kafka cannot take is shed and counted.
type Publisher struct {
	cfg  Config
	cl   *kgo.Client
	own  bool
	snap func() Counters
	log  *slog.Logger

	sent, lost atomic.Uint64
	lastErrMu  sync.Mutex
	lastErr    error
	inflight   sync.WaitGroup
}

// NewPublisher beats through cl, a client the workload already has (its
// buffer is shared: when it is full, the beat is shed).
func NewPublisher(cfg Config, cl *kgo.Client, snap func() Counters, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Publisher{cfg: cfg, cl: cl, snap: snap, log: log}, nil
}

// Dial beats through a client of its own, made from kc, so that beats do
// not queue behind the workload's data. Run closes it.
func Dial(cfg Config, kc kafkaconn.Config, snap func() Counters, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return NewPublisher(cfg, nil, snap, log)
	}
	if kc.ClientID == "" {
		kc.ClientID = "capfleet-heartbeat"
	}
	cl, err := kc.NewClient(
		kgo.MaxBufferedRecords(queueBeats),
		// A beat older than a few periods says nothing a newer one will not.
		kgo.RecordDeliveryTimeout(max(3*cfg.Interval, 10*time.Second)),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return nil, err
	}
	p, err := NewPublisher(cfg, cl, snap, log)
	if err != nil {
		cl.Close()
		return nil, err
	}
	p.own = true
	return p, nil
}

// Stats are the publisher's own counts.
type Stats struct {
	Sent, Lost uint64
	LastError  error
}

// Stats says how many beats Kafka took and how many were shed or failed.
func (p *Publisher) Stats() Stats {
	p.lastErrMu.Lock()
	defer p.lastErrMu.Unlock()
	return Stats{Sent: p.sent.Load(), Lost: p.lost.Load(), LastError: p.lastErr}
}

// finalFlush bounds how long shutdown waits for the last beat.
const finalFlush = 3 * time.Second

// Run beats every interval until ctx ends, then sends a final beat and waits
// for it (at most a few seconds). When the config is not Enabled it only
// waits for ctx.
func (p *Publisher) Run(ctx context.Context) {
	if p.own && p.cl != nil {
		defer p.cl.Close()
	}
	if !p.cfg.Enabled() {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	p.Beat(false)
	for {
		select {
		case <-ctx.Done():
			p.Beat(true)
			p.flush()
			return
		case <-t.C:
			p.Beat(false)
		}
	}
}

// flush waits for the beats in flight, bounded, whatever the client is.
func (p *Publisher) flush() {
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(finalFlush):
		p.log.Warn("final heartbeat not acknowledged in time", "topic", p.cfg.Topic, "wait", finalFlush)
	}
}

// Beat produces one beat now, without waiting for Kafka.
func (p *Publisher) Beat(final bool) {
	if !p.cfg.Enabled() {
		return
	}
	b := Beat{
		Kind: p.cfg.Kind, Namespace: p.cfg.Namespace, Name: p.cfg.Name, UID: p.cfg.UID,
		Pod: p.cfg.Pod, Node: p.cfg.Node,
		Time: time.Now(), Seq: processSeq.Add(1), StartedAt: processStart,
		IntervalMS: p.cfg.Interval.Milliseconds(), Final: final,
		Counters: p.snap(),
	}
	if p.cfg.Problem != nil {
		b.Problem = p.cfg.Problem()
	}
	value, err := Encode(b)
	if err != nil { // only a bug in Counters could do this
		p.failed(err)
		return
	}
	p.inflight.Add(1)
	rec := &kgo.Record{Topic: p.cfg.Topic, Key: []byte(b.Key()), Value: value}
	p.cl.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		defer p.inflight.Done()
		if err != nil {
			p.failed(err)
			return
		}
		p.sent.Add(1)
	})
}

func (p *Publisher) failed(err error) {
	n := p.lost.Add(1)
	p.lastErrMu.Lock()
	first := p.lastErr == nil || p.lastErr.Error() != err.Error()
	p.lastErr = err
	p.lastErrMu.Unlock()
	// One line per kind of failure, not one per beat, while Kafka is away.
	if first {
		p.log.Warn("heartbeat not delivered", "topic", p.cfg.Topic, "lost", n, "error", err)
	}
}
