// Package pipelinetest holds what the end-to-end tests of the processor share: a capture produced into a
// real topic, the flows the same aggregation finds in it offline, and what Cassandra and Kafka hold.
package pipelinetest

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/store"
)

// SharedPcap is a capture under shared/pcaps beside the repository (see its MANIFEST.tsv); missing is a
// failure under CI, a skip elsewhere.
func SharedPcap(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "pcaps", rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	testenv.Missing(t, "capture shared/pcaps/%s not found above the working directory", rel)
	return ""
}

// Frame is one packet of a capture, copied.
type Frame struct {
	Meta packetrecord.Meta
	Data []byte
}

// ReadCapture reads every packet of a capture file, stamping them with node and interface.
func ReadCapture(t testing.TB, path string) []Frame {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Frame
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, Frame{
			Meta: packetrecord.Meta{Timestamp: p.Timestamp, Node: "node-a", Interface: "eth0", LinkType: p.LinkType, OrigLen: p.Length},
			Data: bytes.Clone(p.Data),
		})
	}
}

// Produce writes frames to topic as packet records, partitioned by flow as a sensor does.
func Produce(t testing.TB, cfg kafkaconn.Config, topic string, frames []Frame) {
	t.Helper()
	opts, err := cfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(packetrecord.Partitioner()), kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ProduceRecords(t, cl, RecordsOf(frames)...)
}

// RecordsOf encodes frames as packet records.
func RecordsOf(frames []Frame) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(frames))
	for _, f := range frames {
		recs = append(recs, packetrecord.Encode(f.Meta, f.Data))
	}
	return recs
}

// ProduceRecords produces and waits for every ack.
func ProduceRecords(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// ExpectedFlows runs the pipeline's flow aggregation offline over frames, one table per Kafka
// partition exactly as the pipeline keys them, and returns every flow (open ones as of the end).
func ExpectedFlows(t testing.TB, frames []Frame, cfg pipeline.FlowConfig, sensor string) []store.Flow {
	t.Helper()
	return ExpectedFlowsWithPause(t, frames, cfg, sensor, 0, 0)
}

// ExpectedFlowsWithPause is ExpectedFlows when the pipeline met a pause of at least pause after the
// first `after` frames: a caught-up partition's clock follows the wall clock while it is quiet, so what
// was due within pause of the last packet before it (Zeek's 5 s close delay, say) ended there.
func ExpectedFlowsWithPause(t testing.TB, frames []Frame, cfg pipeline.FlowConfig, sensor string, after int, pause time.Duration) []store.Flow {
	t.Helper()
	var out []store.Flow
	emit := func(f store.Flow) { f.Sensor = sensor; out = append(out, f) }
	newTable := pipeline.NewFlowTableFactory(cfg, nil)
	dec := decode.NewDecoder()
	var p decode.Packet
	tbl, err := newTable(nil, emit)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if pause > 0 && i == after && i > 0 {
			tbl.Expire(frames[i-1].Meta.Timestamp.Add(pause))
		}
		dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &p)
		tbl.Add(&p) // ends what timed out as packet time moves forward, as pcap flows does
	}
	for _, f := range tbl.Dirty() {
		f.Sensor = sensor
		out = append(out, f)
	}
	SortFlows(out)
	return out
}

// SortFlows orders flows by start, then uid, as the store reads them.
func SortFlows(fs []store.Flow) {
	slices.SortFunc(fs, func(a, b store.Flow) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.UID, b.UID)
	})
}

// DiffFlows describes how got differs from want in everything but the closed flag (a flow still open
// at the last checkpoint has its final totals already, but not its final write).
func DiffFlows(got, want []store.Flow) string {
	var b strings.Builder
	byUID := map[string]store.Flow{}
	for _, f := range got {
		if _, dup := byUID[f.UID]; dup {
			fmt.Fprintf(&b, "flow %s twice\n", f.UID)
		}
		byUID[f.UID] = f
	}
	for _, w := range want {
		g, ok := byUID[w.UID]
		if !ok {
			fmt.Fprintf(&b, "missing %s %s:%d -> %s:%d start %s pkts %d/%d\n", w.UID, w.OrigAddr, w.OrigPort, w.RespAddr, w.RespPort, w.Start.Format(time.RFC3339Nano), w.OrigPkts, w.RespPkts)
			continue
		}
		delete(byUID, w.UID)
		if canonical(g) != canonical(w) {
			fmt.Fprintf(&b, "flow %s:\n  got  %+v\n  want %+v\n", w.UID, g, w)
		}
	}
	for uid, g := range byUID {
		fmt.Fprintf(&b, "unexpected %s %s:%d -> %s:%d start %s pkts %d/%d\n", uid, g.OrigAddr, g.OrigPort, g.RespAddr, g.RespPort, g.Start.Format(time.RFC3339Nano), g.OrigPkts, g.RespPkts)
	}
	return b.String()
}

// canonical prints a flow without its closed flag and with times in UTC, for comparison.
func canonical(f store.Flow) string {
	f.Closed = false
	f.Start, f.End = f.Start.UTC(), f.End.UTC()
	return fmt.Sprintf("%+v", f)
}

// TimeSpan is the first and last timestamp of frames.
func TimeSpan(frames []Frame) (time.Time, time.Time) {
	first, last := frames[0].Meta.Timestamp, frames[0].Meta.Timestamp
	for _, f := range frames {
		if f.Meta.Timestamp.Before(first) {
			first = f.Meta.Timestamp
		}
		if f.Meta.Timestamp.After(last) {
			last = f.Meta.Timestamp
		}
	}
	return first, last
}

// Committed returns the group's committed offsets on topic and the topic's end offsets, summed.
func Committed(ctx context.Context, cfg kafkaconn.Config, group, topic string) (committed, end int64, err error) {
	opts, err := cfg.Options()
	if err != nil {
		return 0, 0, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, 0, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			committed += o.At
		}
	})
	return committed, end, nil
}

// Eventually polls cond until it holds or the deadline passes; the deadline is generous because the
// machine is shared, and nothing here measures speed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last: %s", what, within, last)
}

// EthernetOnly fails unless every frame is Ethernet: the pcap comparison writes one link type.
func EthernetOnly(t testing.TB, frames []Frame) {
	t.Helper()
	for i, f := range frames {
		if f.Meta.LinkType != linktype.Ethernet {
			t.Fatalf("frame %d has link type %d", i, f.Meta.LinkType)
		}
	}
}
