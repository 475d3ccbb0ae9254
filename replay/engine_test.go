package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"capfleet.dev/capfleet/linktype"
)

// memSource replays a slice; it reuses one buffer for Data as file readers do,
// so a target that keeps Data without copying it would be caught.
type memSource struct {
	pkts []Packet
	i    int
	buf  []byte
}

func memOpener(pkts []Packet) Opener {
	return func() (Source, error) { return &memSource{pkts: pkts}, nil }
}

func (m *memSource) Next() (Packet, error) {
	if m.i >= len(m.pkts) {
		return Packet{}, io.EOF
	}
	p := m.pkts[m.i]
	m.i++
	m.buf = append(m.buf[:0], p.Data...)
	p.Data = m.buf
	return p, nil
}

func (m *memSource) Close() error { return nil }

// memTarget keeps a copy of every frame; frames for which fail says so fail.
type memTarget struct {
	mu     sync.Mutex
	frames [][]byte
	fail   func([]byte) error
}

func (m *memTarget) Send(p Packet, done func(int, error)) {
	if m.fail != nil {
		if err := m.fail(p.Data); err != nil {
			done(len(p.Data), err)
			return
		}
	}
	m.mu.Lock()
	m.frames = append(m.frames, append([]byte(nil), p.Data...))
	m.mu.Unlock()
	done(len(p.Data), nil)
}
func (m *memTarget) Flush(context.Context) error { return nil }
func (m *memTarget) Close() error                { return nil }
func (m *memTarget) String() string              { return "memory" }

func synthetic(n int) []Packet {
	pkts := make([]Packet, n)
	for i := range pkts {
		data := []byte(fmt.Sprintf("frame-%04d", i))
		pkts[i] = Packet{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data),
			LinkType: linktype.Ethernet, Data: data}
	}
	return pkts
}

func runMem(t *testing.T, cfg Config) (Summary, *memTarget) {
	t.Helper()
	tg := &memTarget{}
	if cfg.Target == nil {
		cfg.Target = tg
	} else {
		tg = cfg.Target.(*memTarget)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sum, tg
}

func TestLoopsRepeatInOrder(t *testing.T) {
	pkts := synthetic(10)
	sum, tg := runMem(t, Config{Open: memOpener(pkts), Pace: Pace{Mode: TopSpeed}, Loops: 3})
	if len(tg.frames) != 30 {
		t.Fatalf("target got %d frames, want 30", len(tg.frames))
	}
	for i, f := range tg.frames {
		if want := pkts[i%10].Data; string(f) != string(want) {
			t.Fatalf("frame %d is %q, want %q", i, f, want)
		}
	}
	if sum.PacketsSent != 30 || sum.PacketsTotal != 30 || sum.LoopsDone != 3 || sum.BytesSent != 300 || sum.BytesTotal != 300 {
		t.Fatalf("summary %+v", sum.Progress)
	}
	if sum.Fraction() != 1 {
		t.Fatalf("fraction %v at the end", sum.Fraction())
	}
}

func TestLimitCutsInsideALoop(t *testing.T) {
	pkts := synthetic(10)
	pkts[0].Data = []byte("a-much-longer-first-frame") // 25 bytes: makes the byte total depend on which packets count
	sum, tg := runMem(t, Config{Open: memOpener(pkts), Pace: Pace{Mode: TopSpeed}, Loops: 0, Limit: 12})
	if len(tg.frames) != 12 || sum.PacketsTotal != 12 {
		t.Fatalf("sent %d, total %d; want 12", len(tg.frames), sum.PacketsTotal)
	}
	if want := uint64(25 + 9*10 + 25 + 10); sum.BytesTotal != want || sum.BytesSent != want {
		t.Fatalf("bytes total %d, sent %d; want %d", sum.BytesTotal, sum.BytesSent, want)
	}
}

func TestFailedAndTruncatedAreCounted(t *testing.T) {
	pkts := synthetic(10)
	pkts[3].Length = 1500 // captured with a short snap length
	pkts[7].Length = 9000
	tg := &memTarget{fail: func(b []byte) error {
		if strings.HasSuffix(string(b), "5") {
			return errors.New("too long")
		}
		return nil
	}}
	sum, _ := runMem(t, Config{Open: memOpener(pkts), Pace: Pace{Mode: TopSpeed}, Loops: 2, Target: tg})
	if sum.PacketsSent != 18 || sum.PacketsFailed != 2 || sum.PacketsTruncated != 4 {
		t.Fatalf("sent %d failed %d truncated %d; want 18, 2, 4", sum.PacketsSent, sum.PacketsFailed, sum.PacketsTruncated)
	}
	if sum.FirstFailure == nil || sum.FirstFailure.Error() != "too long" {
		t.Fatalf("first failure %v", sum.FirstFailure)
	}
	out := sum.String()
	for _, want := range []string{"Actual: 18 packets (180 bytes) sent in ", "Failed packets:            2", "Truncated packets:         4", "Statistics for memory:"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestScanRejects(t *testing.T) {
	wifi := synthetic(3)
	wifi[2].LinkType = linktype.IEEE80211Radio
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty capture", Config{Open: memOpener(nil)}, "the capture holds no packets"},
		{"link type the target cannot send", Config{Open: memOpener(wifi), LinkTypes: []linktype.Type{linktype.Ethernet}},
			"packet 3 has link type RadioTap (127), which memory cannot send"},
		{"open fails", Config{Open: func() (Source, error) { return nil, errors.New("capture file: open x: no such file") }},
			"capture file: open x: no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Target, c.cfg.Pace = &memTarget{}, Pace{Mode: TopSpeed}
			r, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Run(context.Background())
			if err == nil || err.Error() != c.want {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if got := len(c.cfg.Target.(*memTarget).frames); got != 0 {
				t.Fatalf("%d frames sent before the error", got)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{Open: memOpener(nil), Target: &memTarget{}, Loops: -1, Pace: DefaultPace}); err == nil {
		t.Error("negative loop accepted")
	}
	if _, err := New(Config{Open: memOpener(nil), Target: &memTarget{}, Pace: Pace{PPS, 0}}); err == nil {
		t.Error("zero pps accepted")
	}
}

// A cancelled endless run stops, returns the context's error and accounts
// for every packet it handed over.
func TestCancelStopsEndlessRun(t *testing.T) {
	r, err := New(Config{Open: memOpener(synthetic(5)), Pace: Pace{PPS, 1000}, Loops: 0, Target: &memTarget{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for r.Progress().PacketsSent < 20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := r.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if sum.PacketsSent < 20 || sum.PacketsTotal != 0 || !sum.Finished {
		t.Fatalf("progress %+v", sum.Progress)
	}
}

// batchTarget takes frames in batches, as an interface does; frames for which
// fail says so fail alone, the others of their batch are sent.
type batchTarget struct {
	memTarget
	sizes  []int       // frames per SendBatch call
	handed []time.Time // when each frame was handed over, in order
}

func (b *batchTarget) SendBatch(ps []Packet, failed func(int, error)) (sent, sentBytes int) {
	b.sizes = append(b.sizes, len(ps))
	now := time.Now()
	for _, p := range ps {
		b.handed = append(b.handed, now)
		if b.fail != nil {
			if err := b.fail(p.Data); err != nil {
				failed(len(p.Data), err)
				continue
			}
		}
		b.frames = append(b.frames, append([]byte(nil), p.Data...))
		sent, sentBytes = sent+1, sentBytes+len(p.Data)
	}
	return sent, sentBytes
}

func runBatch(t *testing.T, cfg Config, tg *batchTarget) Summary {
	t.Helper()
	cfg.Target = tg
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// At top speed frames reach a batch target many at a time, in file order,
// and a failed frame in the middle of a batch costs only itself.
func TestBatchTargetAtTopSpeed(t *testing.T) {
	pkts := synthetic(1000)
	tg := &batchTarget{memTarget: memTarget{fail: func(b []byte) error {
		if strings.HasSuffix(string(b), "7") {
			return errors.New("refused")
		}
		return nil
	}}}
	sum := runBatch(t, Config{Open: memOpener(pkts), Pace: Pace{Mode: TopSpeed}, Loops: 3}, tg)
	var want [][]byte
	for range 3 {
		for _, p := range pkts {
			if !strings.HasSuffix(string(p.Data), "7") {
				want = append(want, p.Data)
			}
		}
	}
	if sum.PacketsSent != uint64(len(want)) || sum.PacketsFailed != 300 || sum.BytesSent != uint64(10*len(want)) || sum.LoopsDone != 3 {
		t.Fatalf("summary %+v; want %d sent, 300 failed", sum.Progress, len(want))
	}
	if len(tg.frames) != len(want) {
		t.Fatalf("target got %d frames, want %d", len(tg.frames), len(want))
	}
	for i := range want {
		if string(tg.frames[i]) != string(want[i]) {
			t.Fatalf("frame %d is %q, want %q", i, tg.frames[i], want[i])
		}
	}
	if slices.Max(tg.sizes) < 2 || slices.Max(tg.sizes) > batchPackets {
		t.Fatalf("batch sizes %v: want batches of 2 to %d frames", tg.sizes, batchPackets)
	}
}

// Paced, a frame is never handed over before it is due, even when frames
// after a late wake-up go out together.
func TestBatchTargetPacedFramesAreDue(t *testing.T) {
	const pps = 5000
	pkts := synthetic(1000)
	tg := &batchTarget{}
	sum := runBatch(t, Config{Open: memOpener(pkts), Pace: Pace{PPS, pps}, Loops: 1}, tg)
	if sum.PacketsSent != 1000 || len(tg.handed) != 1000 {
		t.Fatalf("sent %d, handed %d; want 1000", sum.PacketsSent, len(tg.handed))
	}
	for i, at := range tg.handed {
		// The start is a wall-clock reading; a microsecond covers its rounding.
		due := sum.Started.Add(time.Duration(i)*time.Second/pps - time.Microsecond)
		if at.Before(due) {
			t.Fatalf("frame %d handed over %v before it was due", i, due.Sub(at))
		}
	}
	t.Logf("%d calls for 1000 frames, largest batch %d", len(tg.sizes), slices.Max(tg.sizes))
}
