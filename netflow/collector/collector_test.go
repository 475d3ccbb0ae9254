package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/processor/store"
)

// stuckWriter stands for a Cassandra that refuses writes until it is let go, then takes everything.
type stuckWriter struct {
	mu      sync.Mutex
	refuse  bool
	written []store.Flow
}

func (w *stuckWriter) WriteFlows(_ context.Context, flows []store.Flow, _ time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refuse {
		return errors.New("cassandra: no hosts available")
	}
	w.written = append(w.written, flows...)
	return nil
}

// v5 is a NetFlow v5 packet of n flows from 10.0.0.1:1000+seq+i to 10.0.0.2:80, sequence seq.
func v5(seq uint32, n int) []byte {
	b := make([]byte, 24+48*n)
	binary.BigEndian.PutUint16(b, 5)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint32(b[8:], 1_700_000_000)
	binary.BigEndian.PutUint32(b[16:], seq)
	for i := range n {
		r := b[24+48*i:]
		copy(r, []byte{10, 0, 0, 1, 10, 0, 0, 2})
		binary.BigEndian.PutUint32(r[16:], 1)                       // packets
		binary.BigEndian.PutUint32(r[20:], 60)                      // octets
		binary.BigEndian.PutUint16(r[32:], uint16(1000+int(seq)+i)) // a port of its own: records differ
		binary.BigEndian.PutUint16(r[34:], 80)
		r[38] = 6
	}
	return b
}

// While Cassandra refuses writes the collector keeps at most MaxPending flows, counts the rest as
// dropped and says it is not ready; once writes go through, it stores what it kept and is ready again.
func TestPendingBoundWhileCassandraRefuses(t *testing.T) {
	w := &stuckWriter{refuse: true}
	c, err := New(Config{Listen: "127.0.0.1:0", MaxPending: 50, FlushInterval: 20 * time.Millisecond}, w, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	conn, err := net.Dial("udp", c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 4 { // 4 x 30 flows, sequence numbers without a gap
		conn.Write(v5(uint32(30*i), 30))
	}
	wait(t, func() bool { return c.C.Records.Load() == 120 && c.C.WriteErrors.Load() > 0 })
	if c.Ready() {
		t.Error("ready while every write fails")
	}
	if got := c.C.FlowsDropped.Load(); got != 70 {
		t.Errorf("%d flows dropped, want 70 (120 received, 50 kept)", got)
	}
	w.mu.Lock()
	w.refuse = false
	w.mu.Unlock()
	wait(t, func() bool { return c.C.FlowsWritten.Load() == 50 })
	if !c.Ready() || c.C.SequenceGaps.Load() != 0 || c.C.Exporters.Load() != 1 {
		t.Errorf("ready %v, gaps %d, exporters %d", c.Ready(), c.C.SequenceGaps.Load(), c.C.Exporters.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, f := range w.written {
		if seen[f.UID] {
			t.Errorf("flow %s written twice", f.UID)
		}
		seen[f.UID] = true
		if f.Sensor != "netflow:127.0.0.1" || f.OrigPkts != 1 || f.OrigIPBytes != 60 || f.RespPort != 80 {
			t.Errorf("stored %+v", f)
		}
	}
}

func wait(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// ICMP's type and code, which NetFlow puts in the destination port, are stored as Zeek has them.
func TestToStoreFlowICMP(t *testing.T) {
	r := netflow.Record{Exporter: netip.MustParseAddr("192.0.2.9"), Version: 9, SrcAddr: netip.MustParseAddr("10.0.0.1"),
		DstAddr: netip.MustParseAddr("10.0.0.2"), Proto: 1, DstPort: 8<<8 | 0, Packets: 3, Bytes: 252}
	f := ToStoreFlow(&r, "edge:")
	if f.OrigPort != 8 || f.RespPort != 0 || f.Sensor != "edge:192.0.2.9" || f.CommunityID == "" || f.UID == "" {
		t.Errorf("%+v", f)
	}
	r2 := r
	r2.Packets++
	if ToStoreFlow(&r2, "edge:").UID == f.UID {
		t.Error("two different records share a UID")
	}
}
