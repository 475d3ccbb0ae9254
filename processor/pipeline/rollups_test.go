package pipeline

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
)

func ipPacket(ts time.Time, src, dst string, proto uint8, n int) decode.Packet {
	var p decode.Packet
	p.Timestamp, p.NIP = ts, 1
	p.IP[0] = decode.IPHeader{Version: 4, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, TotalLen: n, HeaderLen: 20}
	return p
}

// Counters close by packet time alone, a packet later than the lateness opens a new counter under its
// own offset, and a checkpointed partition resumes with the same counters, marked to be written again.
func TestRollupsCloseByPacketTimeAndResume(t *testing.T) {
	cfg := RollupConfig{Step: time.Second, EdgeWindow: time.Minute, Lateness: 5 * time.Second}
	r := newRollups(cfg)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(off int64, ts time.Time, src, dst string) {
		p := ipPacket(ts, src, dst, 6, 100)
		a := r.packet(off, ts, 114, "s", 2)
		a.classify(&p, 114)
		r.edge(off, &p, off == 0, "s", 2)
	}
	add(0, t0, "10.0.0.1", "8.8.8.8")
	add(1, t0.Add(300*time.Millisecond), "8.8.8.8", "10.0.0.1")
	add(2, t0.Add(2*time.Second), "10.0.0.1", "10.0.0.2")

	state, err := r.marshal()
	if err != nil {
		t.Fatal(err)
	}
	tr, er := r.take("s", 2, false)
	if len(tr) != 2 || len(er) != 0 {
		t.Fatalf("take: %d traffic rows, %d edge rows; want 2 and none (the minute is open)", len(tr), len(er))
	}
	first := tr[0]
	if tr[1].Start.Before(first.Start) {
		first = tr[1]
	}
	if first.Packets != 2 || first.Bytes != 228 || first.Out.Packets != 1 || first.In.Packets != 1 || first.Proto[6].Packets != 2 || first.FirstOffset != 0 {
		t.Fatalf("second 0: %+v", first)
	}

	// A resumed copy writes its loaded counters again, the same rows.
	again, err := restoreRollups(cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	rtr, rer := again.take("s", 2, true)
	_, all := newRollupsFrom(t, cfg, state).take("s", 2, true)
	if len(rtr) != 2 || len(rer) != 2 || len(all) != 2 || again.clock != r.clock {
		t.Fatalf("a resumed partition rewrites %d traffic and %d edge rows, want 2 and 2", len(rtr), len(rer))
	}
	for _, row := range rtr {
		if row.Start.Equal(first.Start) && (row.Packets != 2 || row.Bytes != 228 || row.Out.Packets != 1 || row.Proto[6].Packets != 2) {
			t.Fatalf("resumed second 0: %+v", row)
		}
	}
	// A damaged checkpoint is refused, not half read.
	for _, bad := range [][]byte{{}, {9}, state[:len(state)-1], append([]byte{rollupStateVersion}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)} {
		if r, err := restoreRollups(cfg, bad); err == nil || len(r.traffic) != 0 {
			t.Errorf("checkpoint %x: %v", bad, err)
		}
	}

	// 70 s later: second 0 and 2 and the first minute's edges are closed.
	add(3, t0.Add(70*time.Second), "10.0.0.1", "10.0.0.2")
	tr, er = r.take("s", 2, false)
	if len(er) != 2 || len(r.traffic) != 1 || len(r.edges) != 1 {
		t.Fatalf("after 70 s: %d edge rows, %d open seconds, %d open edges", len(er), len(r.traffic), len(r.edges))
	}
	// Pairs have the smaller address first; 8.8.8.8 comes before 10.0.0.1.
	for _, e := range er {
		switch e.A.String() + " " + e.B.String() {
		case "8.8.8.8 10.0.0.1":
			if e.Packets != 2 || e.Flows != 1 || e.Bytes != 200 || e.FirstOffset != 0 {
				t.Errorf("edge row %+v", e)
			}
		case "10.0.0.1 10.0.0.2":
			if e.Packets != 1 || e.Flows != 0 || e.Bytes != 100 || e.FirstOffset != 2 {
				t.Errorf("edge row %+v", e)
			}
		default:
			t.Errorf("edge row %+v", e)
		}
	}
	// A packet of second 0 now is late: a new counter, under its own offset.
	add(4, t0.Add(100*time.Millisecond), "10.0.0.1", "8.8.8.8")
	tr, _ = r.take("s", 2, false)
	found := false
	for _, row := range tr {
		if row.Start.Equal(t0) {
			found = row.FirstOffset == 4 && row.Packets == 1
		}
	}
	if !found {
		t.Fatalf("a late packet: rows %+v", tr)
	}
}

func TestRollupConfigValidate(t *testing.T) {
	for _, c := range []RollupConfig{{Step: 7 * time.Second}, {EdgeWindow: 2 * time.Hour}, {Step: -time.Second}, {Step: 1500 * time.Microsecond}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, c := range []RollupConfig{{}, {Step: time.Second, EdgeWindow: time.Minute}, {Step: 100 * time.Millisecond, EdgeWindow: time.Hour}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// BenchmarkRollupsPerPacket is what the traffic counters and edge rollups add to each record of a real
// capture: the window lookup, the protocol and direction split and the pair's counter.
func BenchmarkRollupsPerPacket(b *testing.B) {
	path := ""
	for dir, _ := os.Getwd(); ; dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, "shared", "pcaps", "ndpi", "ethereum.pcap"); fileExists(p) {
			path = p
			break
		}
		if filepath.Dir(dir) == dir {
			b.Skip("shared/pcaps/ndpi/ethereum.pcap not found")
		}
	}
	rd, err := pcapfile.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	dec := decode.NewDecoder()
	var pkts []decode.Packet
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		var d decode.Packet
		dec.Decode(append([]byte(nil), p.Data...), decode.LinkType(p.LinkType), p.Timestamp, p.Length, &d)
		pkts = append(pkts, d)
	}
	rd.Close()
	r := newRollups(RollupConfig{Step: time.Second, EdgeWindow: time.Minute})
	span := pkts[len(pkts)-1].Timestamp.Sub(pkts[0].Timestamp) + time.Second
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := &pkts[i%len(pkts)]
		shift := time.Duration(i/len(pkts)) * span // time goes on, as in a live capture
		p.Timestamp = p.Timestamp.Add(shift)
		a := r.packet(int64(i), p.Timestamp, p.Len, "bench", 0)
		a.classify(p, p.Len)
		r.edge(int64(i), p, false, "bench", 0)
		p.Timestamp = p.Timestamp.Add(-shift)
		if i%100000 == 0 {
			r.take("bench", 0, false) // what checkpoints do
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func newRollupsFrom(t *testing.T, cfg RollupConfig, state []byte) *rollups {
	t.Helper()
	r, err := restoreRollups(cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A rollup checkpoint of any bytes is read or refused, never a crash, and one that is read writes
// itself back the same.
func FuzzRestoreRollups(f *testing.F) {
	cfg := RollupConfig{Step: time.Second, EdgeWindow: time.Minute}
	r := newRollups(cfg)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, pair := range [][2]string{{"10.0.0.1", "8.8.8.8"}, {"2001:db8::1", "2001:db8::2"}, {"192.168.1.1", "192.168.1.2"}} {
		ts := t0.Add(time.Duration(i) * 700 * time.Millisecond)
		p := ipPacket(ts, pair[0], pair[1], 17, 80)
		if pair[0][0] == '2' {
			p.IP[0].Version = 6
		}
		r.packet(int64(i), ts, 94, "s", 0).classify(&p, 94)
		r.edge(int64(i), &p, true, "s", 0)
	}
	state, err := r.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state)
	f.Add([]byte{rollupStateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := restoreRollups(cfg, b)
		if err != nil {
			return
		}
		again, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := restoreRollups(cfg, again)
		if err != nil || len(r2.traffic) != len(r.traffic) || len(r2.edges) != len(r.edges) {
			t.Fatalf("a checkpoint read back: %v, %d/%d traffic, %d/%d edges", err, len(r2.traffic), len(r.traffic), len(r2.edges), len(r.edges))
		}
	})
}

// A replay that goes back in time (a looped capture) opens counters for windows closed already; they
// are closed in turn after maxLate of them, not kept for as long as the clock stays ahead.
func TestLateCountersAreBounded(t *testing.T) {
	r := newRollups(RollupConfig{Step: time.Second, EdgeWindow: time.Minute})
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r.packet(0, t0.Add(24*time.Hour), 60, "s", 0) // the clock, far ahead
	for i := range 3 * maxLate {
		ts := t0.Add(time.Duration(i) * time.Second)
		p := ipPacket(ts, "10.0.0.1", "10.0.0.2", 6, 40)
		r.packet(int64(i+1), ts, 60, "s", 0).classify(&p, 60)
		r.edge(int64(i+1), &p, false, "s", 0)
	}
	if len(r.traffic) > maxLate+1 || len(r.edges) > maxLate {
		t.Fatalf("%d traffic and %d edge counters open", len(r.traffic), len(r.edges))
	}
	tr, _ := r.take("s", 0, true)
	var n uint64
	for _, row := range tr {
		n += row.Packets
	}
	if n != 3*maxLate+1 {
		t.Fatalf("%d packets in the rows, want %d", n, 3*maxLate+1)
	}
}
