package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/processor/store"
)

// publish produces closed flows to the flows topic, keyed by uid, and waits for the broker's acks. A
// restart may produce a flow again (at least once): the uid key lets a consumer, or a compacted topic,
// keep one.
func (p *Pipeline) publish(ctx context.Context, flows []store.Flow) error {
	if p.cfg.FlowsTopic == "" || len(flows) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(flows))
	for i := range flows {
		v, err := json.Marshal(flows[i].JSON())
		if err != nil {
			return fmt.Errorf("flow %s to JSON: %w", flows[i].UID, err)
		}
		recs = append(recs, &kgo.Record{Topic: p.cfg.FlowsTopic, Key: []byte(flows[i].UID), Value: v})
	}
	delay := retryStart
	for {
		err := p.cl.ProduceSync(ctx, recs...).FirstErr()
		if err == nil {
			p.c.FlowsPublished.Add(uint64(len(recs)))
			return nil
		}
		p.c.KafkaErrors.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// ProduceSync already retried what Kafka calls retriable; what is left (say, the topic missing)
		// may be fixed by an operator, so keep trying rather than commit past unpublished flows.
		p.c.Retries.Add(1)
		p.c.Problem.Failed("kafka: publish flows to "+p.cfg.FlowsTopic, err)
		p.ready.Store(false)
		p.log.Warn("publish flows failed, retrying", "topic", p.cfg.FlowsTopic, "err", err, "in", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, retryMax)
	}
}

// export sends closed flows to the IPFIX collectors. UDP export is lossy by design (the sequence
// numbers tell a collector what it missed), so a failed send is counted and the flows move on: a
// collector that is away must not stop the pipeline's commits.
func (p *Pipeline) export(flows []store.Flow) {
	if p.ipfix == nil || len(flows) == 0 {
		return
	}
	sent := p.ipfix.Stats.Records
	for i := range flows {
		if err := p.ipfix.AddStored(&flows[i]); err != nil {
			p.c.IPFIXErrors.Add(1)
		}
	}
	if err := p.ipfix.Flush(); err != nil {
		p.c.IPFIXErrors.Add(1)
		p.log.Warn("ipfix export failed", "err", err)
	}
	p.c.FlowsExported.Add(p.ipfix.Stats.Records - sent)
}
