package heartbeat

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumerOptions are the kgo options of the operator's stats consumer: the
// whole topic without a group (every operator replica sees every beat),
// starting lookback ago, so a restarted operator has its window at once.
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
