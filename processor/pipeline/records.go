package pipeline

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/packetjson"
)

// packetRecords gathers the JSON records of one poll's packets for the records topic. Keys and values
// are written into one arena and the kgo.Records are reused, so a record costs no allocation once the
// buffers have grown to a poll's size: the batch is produced and acknowledged before the next poll
// refills them.
type packetRecords struct {
	arena []byte
	spans []int // per record: where its key starts and where its value starts in the arena
	recs  []kgo.Record
	ptrs  []*kgo.Record
}

func (b *packetRecords) len() int { return len(b.spans) / 2 }

// add appends the record of the packet at offset of partition part. Its key, "partition:offset" of
// the packet record it came from, is the same on every run, so a consumer can drop the copies a
// restart produces again.
func (b *packetRecords) add(part int32, offset int64, pkt *decode.Packet, frame []byte) {
	start := len(b.arena)
	b.arena = strconv.AppendInt(b.arena, int64(part), 10)
	b.arena = append(b.arena, ':')
	b.arena = strconv.AppendInt(b.arena, offset, 10)
	mid := len(b.arena)
	b.arena = packetjson.Append(b.arena, 0, pkt, frame)
	b.spans = append(b.spans, start, mid)
}

// batch returns the records to produce, their keys and values slices of the arena as it ends up
// (it may have moved while growing).
func (b *packetRecords) batch(topic string) []*kgo.Record {
	n := b.len()
	if cap(b.recs) < n {
		b.recs = make([]kgo.Record, n)
	}
	b.recs, b.ptrs = b.recs[:n], b.ptrs[:0]
	for i := range n {
		start, mid, end := b.spans[2*i], b.spans[2*i+1], len(b.arena)
		if i+1 < n {
			end = b.spans[2*i+2]
		}
		b.recs[i] = kgo.Record{Topic: topic, Key: b.arena[start:mid:mid], Value: b.arena[mid:end:end]}
		b.ptrs = append(b.ptrs, &b.recs[i])
	}
	return b.ptrs
}

func (b *packetRecords) reset() { b.arena, b.spans = b.arena[:0], b.spans[:0] }

// publishRecords produces the packet records gathered since the last call and waits for the broker's
// acks, retrying like the flows topic: offsets are committed only past records it acknowledged.
func (p *Pipeline) publishRecords(ctx context.Context) error {
	if p.out.len() == 0 {
		return nil
	}
	recs := p.out.batch(p.cfg.RecordsTopic)
	delay := retryStart
	for {
		err := p.cl.ProduceSync(ctx, recs...).FirstErr()
		if err == nil {
			p.c.PacketRecordsPublished.Add(uint64(len(recs)))
			p.out.reset()
			return nil
		}
		p.c.KafkaErrors.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.c.Retries.Add(1)
		p.c.Problem.Failed("kafka: publish packet records to "+p.cfg.RecordsTopic, err)
		p.ready.Store(false)
		p.log.Warn("publish packet records failed, retrying", "topic", p.cfg.RecordsTopic, "err", err, "in", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, retryMax)
		// A record whose produce failed keeps its attempt's fields: start each one afresh.
		for _, r := range recs {
			*r = kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
		}
	}
}
