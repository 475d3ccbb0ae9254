package heartbeat

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// ConsumerOptions are the kgo options of the operator's stats consumer: the
// whole topic without a group (every operator replica sees every beat),
// starting lookback ago, so a restarted operator has its window at once.
// (Staleness is judged by the operator's clock when a beat is read, so a pod
// that died within the lookback looks live for three of its intervals after
// an operator restart, then stale.)
func ConsumerOptions(topic string, lookback time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-lookback).UnixMilli())),
	}
}

// Consume feeds a from cl's fetches until ctx ends (or cl is closed), and sweeps a every
// sweep interval (a pod that falls silent sends nothing to react to).
// Records that are not beats are counted in Stats().BadRecords; fetch
// errors go to onErr (may be nil) and never end the loop: the client retries.
func (a *Aggregator) Consume(ctx context.Context, cl *kgo.Client, sweep time.Duration, onErr func(error)) {
	if sweep <= 0 {
		sweep = 5 * time.Second
	}
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		t := time.NewTicker(sweep)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.Sweep()
			}
		}
	}()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		if onErr != nil {
			fetches.EachError(func(_ string, _ int32, err error) { onErr(err) })
		}
		fetches.EachRecord(func(r *kgo.Record) {
			b, err := Decode(r.Value)
			if err != nil {
				a.badRecord()
				return
			}
			a.Observe(b)
		})
	}
}

// Consumer is the operator's stats consumer as a controller-runtime manager
// Runnable (it has Start and NeedLeaderElection, without importing the
// manager): mgr.Add(&heartbeat.Consumer{...}).
type Consumer struct {
	Aggregator *Aggregator
	Kafka      kafkaconn.Config
	Topic      string // default DefaultTopic
	// Lookback is how far back a starting consumer reads (default: one
	// minute, enough to fill the default window at once).
	Lookback time.Duration
	// SweepEvery is how often silence is checked for (default 5s).
	SweepEvery time.Duration
	// OnChange is called, from one goroutine, with each resource that has
	// new figures; it should only enqueue (a reconcile), not block.
	OnChange func(ResourceKey)
	// OnError receives fetch errors (the client retries them by itself).
	OnError func(error)
	// LeaderOnly makes NeedLeaderElection true: only the leader consumes.
	LeaderOnly bool
}

// NeedLeaderElection tells the manager whether to start this only on the leader.
func (c *Consumer) NeedLeaderElection() bool { return c.LeaderOnly }

// Start consumes until ctx ends. It fails only when the client cannot be
// made (bad Kafka secret files); a broker that is away is waited for.
func (c *Consumer) Start(ctx context.Context) error {
	topic, lookback := c.Topic, c.Lookback
	if topic == "" {
		topic = DefaultTopic
	}
	if lookback <= 0 {
		lookback = time.Minute
	}
	kc := c.Kafka
	if kc.ClientID == "" {
		kc.ClientID = "capfleet-operator-stats"
	}
	cl, err := kc.NewClient(ConsumerOptions(topic, lookback)...)
	if err != nil {
		return fmt.Errorf("stats consumer: %w", err)
	}
	defer cl.Close()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.Aggregator.Notify():
				for _, k := range c.Aggregator.TakeChanged() {
					if c.OnChange != nil {
						c.OnChange(k)
					}
				}
			}
		}
	}()
	c.Aggregator.Consume(ctx, cl, c.SweepEvery, c.OnError)
	<-notified
	return nil
}
