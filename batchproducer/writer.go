package batchproducer

import (
	"bytes"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/packetrecord"
)

// Writer appends packet records to its own open batch of each partition. One goroutine uses a
// Writer; a sensor has one per capture ring, so rings share nothing per packet, and a flow, which a
// fanout group keeps on one ring, keeps its order within its partition.
type Writer struct {
	p        *Producer
	tag      any
	tab      *table
	open     []*batch
	names    packetrecord.BatchNames
	opened   int64 // the clock when the oldest open batch took its first record (ns)
	nOpen    int   // records in open batches
	credit   int   // bytes of the producer's bound this Writer holds and has not used yet
	recordsC int   // records likewise
	scratch  bytes.Buffer
}

// NewWriter returns a Writer whose batches carry tag to Config.Done.
func (p *Producer) NewWriter(tag any) *Writer {
	return &Writer{p: p, tag: tag}
}

// Append adds the record of m and frame with Kafka timestamp now, which is also the clock of the
// linger: a sensor passes the time the kernel stamped the packet with. It returns false, appending
// nothing, when the producer's bound is reached: Flush, then Wait for room.
func (w *Writer) Append(now time.Time, m packetrecord.Meta, frame []byte) bool {
	if tab := w.p.tab.Load(); tab != w.tab {
		w.retable(tab)
	}
	need := packetrecord.BatchRecordLen(m, frame)
	if (w.credit < need || w.recordsC < 1) && !w.takeCredit(need) {
		return false
	}
	ns := now.UnixNano()
	if w.nOpen > 0 && (ns-w.opened >= int64(w.p.cfg.Linger) || ns < w.opened) {
		w.Flush()
	}
	i := int(packetrecord.FlowHash(frame, m.LinkType) % uint32(len(w.open)))
	b := w.open[i]
	switch {
	case b == nil:
		b = w.p.newBatch(w.tab.parts[i], w.tag)
		w.open[i] = b
	case len(b.raw)+need > headerLen+w.p.cfg.BatchBytes:
		if w.seal(b) {
			b.part.enqueue(b)
		}
		b = w.p.newBatch(w.tab.parts[i], w.tag)
		w.open[i] = b
	}
	if w.nOpen == 0 {
		w.opened = ns
	}
	ms := now.UnixMilli()
	if b.records == 0 {
		b.firstMs = ms
	}
	n := len(b.raw)
	b.raw = w.names.Append(b.raw, ms-b.firstMs, int32(b.records), m, frame)
	b.add(ms, len(frame))
	used := len(b.raw) - n
	b.held += used
	w.credit -= used
	w.recordsC--
	w.nOpen++
	return true
}

// takeCredit takes another part of the producer's bound, at least need bytes and a record.
func (w *Writer) takeCredit(need int) bool {
	bytes, records := w.p.hold(need, w.credit, w.recordsC)
	if records == 0 {
		return false
	}
	w.credit += bytes
	w.recordsC += records
	return true
}

// Flush seals every open batch, so the senders take them now rather than when the linger ends.
func (w *Writer) Flush() {
	for i, b := range w.open {
		if b != nil {
			w.open[i] = nil
			if w.seal(b) {
				b.part.enqueue(b)
			}
		}
	}
	w.nOpen = 0
}

// Tick flushes the open batches once the linger has passed by the clock now, and says when it next
// needs to be called (zero: nothing is open). A ring that waits for packets calls it when it wakes.
func (w *Writer) Tick(now time.Time) time.Time {
	if w.nOpen == 0 {
		return time.Time{}
	}
	ns := now.UnixNano()
	if ns-w.opened >= int64(w.p.cfg.Linger) || ns < w.opened {
		w.Flush()
		return time.Time{}
	}
	return time.Unix(0, w.opened+int64(w.p.cfg.Linger))
}

// Wait blocks, after Append found the bound reached, until batches are answered or giveUp fires,
// and says which. When this Writer's open batches hold most of what is held, they go now: waiting
// for their linger would stall it. Otherwise they keep filling once room comes, rather than leave
// as small batches each time the bound is reached.
func (w *Writer) Wait(giveUp <-chan time.Time) bool {
	room := w.p.roomSignal()
	bytes, records := w.p.Held()
	if bytes < w.p.cfg.BufferBytes && records < w.p.cfg.BufferRecords {
		return true // room came since Append looked
	}
	if w.nOpen > 0 && 2*w.nOpen >= records-w.recordsC {
		w.Flush()
	}
	select {
	case <-room:
		return true
	case <-giveUp:
		return false
	}
}

// Close flushes the open batches and hands back the Writer's unused part of the bound.
func (w *Writer) Close() {
	w.Flush()
	w.p.release(w.credit, w.recordsC)
	w.credit, w.recordsC = 0, 0
}

// retable moves to a new partition table (the topic grew): open batches are sealed to the partitions
// they were hashed to, new ones are hashed over the new count.
func (w *Writer) retable(tab *table) {
	w.Flush()
	w.tab = tab
	w.open = make([]*batch, len(tab.parts))
}

// seal compresses b for its partition's sender, and says whether it holds records to send (an
// empty one is freed). A batch whose records compress to no less than they are goes as they are.
func (w *Writer) seal(b *batch) bool {
	if b.records == 0 {
		w.p.free(b)
		return false
	}
	codec := int8(kgo.CodecNone)
	b.wire = b.raw
	if c := w.p.cfg.Compressor; c != nil {
		w.scratch.Reset()
		out, ct := c.Compress(&w.scratch, b.raw[headerLen:])
		if ct != kgo.CodecNone && ct != kgo.CodecError && len(out) < len(b.raw)-headerLen {
			b.wire = append(w.p.takeWire(headerLen + len(out))[:headerLen], out...)
			codec = int8(ct)
			w.p.putRaw(b.raw)
			b.raw = nil
		}
	}
	writeHeader(b.wire, codec, b.records, b.firstMs, b.maxMs)
	return true
}
