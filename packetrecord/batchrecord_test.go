package packetrecord

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"capfleet.dev/capfleet/linktype"
)

// AppendBatchRecord writes the record franz-go's own encoder (kmsg.Record.AppendTo, the record
// format of a v2 batch) writes for Encode's record, and BatchRecordLen bounds it.
func TestAppendBatchRecordIsKafkasRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var kept BatchNames
	for i := range 2000 {
		frame := make([]byte, rng.IntN(300))
		for j := range frame {
			frame[j] = byte(rng.Uint32())
		}
		m := Meta{
			Timestamp: time.Unix(rng.Int64N(4e9)-1e9, rng.Int64N(1e9)), // before the epoch too
			Node:      string(bytes.Repeat([]byte("n"), rng.IntN(200)/(1+i%7*30))),
			Interface: string(bytes.Repeat([]byte("i"), rng.IntN(20)/(1+i%5*10))),
			LinkType:  linktype.Type(rng.Uint32()),
			OrigLen:   len(frame) + rng.IntN(1<<20),
		}
		tsDelta, offsetDelta := rng.Int64N(1<<40)-1<<39, int32(rng.IntN(1<<20))
		r := Encode(m, frame)
		want := kmsg.Record{
			TimestampDelta64: tsDelta, OffsetDelta: offsetDelta, Key: r.Key, Value: r.Value,
			Headers: []kmsg.Header{{Key: r.Headers[0].Key, Value: r.Headers[0].Value}},
		}
		// Length is everything after itself: encode once to learn it.
		body := want.AppendTo(nil)
		want.Length = int32(len(body) - 1) // a zero length took one byte
		wantBytes := want.AppendTo(nil)
		prefix := []byte("before")
		// Every other case through one BatchNames, whose names change now and then.
		var got []byte
		if i%2 == 0 {
			got = AppendBatchRecord(append([]byte(nil), prefix...), tsDelta, offsetDelta, m, frame)
		} else {
			got = kept.Append(append([]byte(nil), prefix...), tsDelta, offsetDelta, m, frame)
		}
		if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], wantBytes) {
			t.Fatalf("case %d: record\n got %x\nwant %x", i, got[len(prefix):], wantBytes)
		}
		if n := len(got) - len(prefix); n > BatchRecordLen(m, frame) {
			t.Fatalf("case %d: %d bytes, BatchRecordLen said at most %d", i, n, BatchRecordLen(m, frame))
		}
	}
}

// BenchmarkAppendBatchRecord is a small packet's record written into a batch's buffer, as the
// sensor's Writers do (BatchNames): no allocation.
func BenchmarkAppendBatchRecord(b *testing.B) {
	var bn BatchNames
	frame := make([]byte, 67)
	m := Meta{Timestamp: time.Unix(1700000000, 5), Node: "node-a", Interface: "eth0", LinkType: linktype.Ethernet, OrigLen: len(frame)}
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if len(buf) > cap(buf)-BatchRecordLen(m, frame) {
			buf = buf[:0]
		}
		buf = bn.Append(buf, 3, int32(i&1023), m, frame)
	}
}
