//go:build linux

package replay

import (
	"bytes"
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sameFrames fails unless got is the frames of want, in order, repeated loops times.
func sameFrames(t *testing.T, got, want []capturedPacket, loops int) {
	t.Helper()
	if len(got) != loops*len(want) {
		t.Fatalf("captured %d packets, want %d (%d x %d)", len(got), loops*len(want), loops, len(want))
	}
	for i, g := range got {
		w := want[i%len(want)]
		if !bytes.Equal(g.data, w.data) {
			t.Fatalf("packet %d (file packet %d): captured %d bytes % x..., file has %d bytes % x...",
				i+1, i%len(want)+1, len(g.data), head(g.data), len(w.data), head(w.data))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 24)] }

func TestReplayOntoVethDeliversTheFileInOrder(t *testing.T) {
	for _, c := range []struct {
		file  string
		loops int
	}{
		{"ndpi/teamviewer.pcap", 1},
		{"ndpi/stun_google_meet.pcapng", 1},
		{"ndpi/teamviewer.pcap", 3},
	} {
		t.Run(filepath.Base(c.file)+"-loop"+strconv.Itoa(c.loops), func(t *testing.T) {
			file := sharedPcap(t, c.file)
			want, err := readCapture(file)
			if err != nil {
				t.Fatal(err)
			}
			if n := tcpdumpCount(t, file); n != len(want) {
				t.Fatalf("tcpdump reads %d packets from the file, pcapfile %d", n, len(want))
			}
			v := newVethPair(t, 1500)
			d := v.startTcpdump(t)
			sum := replayOnto(t, v, file, Pace{PPS, 10000}, c.loops, 0)
			got := d.waitFor(t, c.loops*len(want))
			sameFrames(t, got, want, c.loops)
			if sum.PacketsSent != uint64(c.loops*len(want)) || sum.PacketsFailed != 0 || sum.LoopsDone != uint64(c.loops) {
				t.Fatalf("summary disagrees with the capture: %+v", sum.Progress)
			}
		})
	}
}

// Frames longer than the MTU plus the Ethernet header cannot be sent: they
// count as failed, like tcpreplay's, and everything else still arrives. At
// top speed the file's 94 frames go out in one batch with the oversize ones
// in its middle, so a batch that lost the frames after a refused one, or
// counted them twice, shows.
func TestReplayOversizeFramesCountAsFailed(t *testing.T) {
	file := sharedPcap(t, "ndpi/WebattackSQLinj.pcap")
	oversize := tcpdumpCount(t, file, "greater", "1515") // wire length >= 1515 = more than 1500 + 14
	all, err := readCapture(file)
	if err != nil {
		t.Fatal(err)
	}
	var fit []capturedPacket
	for _, p := range all {
		if len(p.data) <= 1514 {
			fit = append(fit, p)
		}
	}
	if oversize == 0 || oversize+len(fit) != len(all) {
		t.Fatalf("fixture: tcpdump sees %d frames over 1514 bytes, pcapfile %d of %d", oversize, len(all)-len(fit), len(all))
	}
	for _, c := range []struct {
		pace  Pace
		loops int
	}{{Pace{PPS, 5000}, 1}, {Pace{Mode: TopSpeed}, 20}} {
		t.Run(c.pace.String(), func(t *testing.T) {
			v := newVethPair(t, 1500)
			d := v.startTcpdump(t)
			sum := replayOnto(t, v, file, c.pace, c.loops, 0)
			if sum.PacketsFailed != uint64(c.loops*oversize) || sum.PacketsSent != uint64(c.loops*len(fit)) {
				t.Fatalf("sent %d failed %d; want %d sent and %d failed", sum.PacketsSent, sum.PacketsFailed, c.loops*len(fit), c.loops*oversize)
			}
			if sum.FirstFailure == nil || !strings.Contains(sum.FirstFailure.Error(), "longer than MTU 1500") {
				t.Fatalf("first failure %v", sum.FirstFailure)
			}
			sameFrames(t, d.waitFor(t, c.loops*len(fit)), fit, c.loops)
		})
	}
}

// Records the capture cut short are sent as captured and counted.
func TestReplayTruncatedRecordsSentAsCaptured(t *testing.T) {
	file := sharedPcap(t, "zeek/tcp/timestamp.pcap")
	want, err := readCapture(file)
	if err != nil {
		t.Fatal(err)
	}
	// tshark is the oracle for how many records are cut short.
	out, err := exec.Command("tshark", "-r", file, "-Y", "frame.len > frame.cap_len", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Skipf("tshark: %v", err)
	}
	truncated := bytes.Count(out, []byte("\n"))
	v := newVethPair(t, 1500)
	d := v.startTcpdump(t)
	sum := replayOnto(t, v, file, Pace{PPS, 10000}, 1, 0)
	if truncated == 0 || sum.PacketsTruncated != uint64(truncated) {
		t.Fatalf("truncated: replay counted %d, tshark finds %d", sum.PacketsTruncated, truncated)
	}
	sameFrames(t, d.waitFor(t, len(want)), want, 1)
}

// At 2,000 packets/s over 10 s, the rate measured from the kernel's arrival
// timestamps at the other veth end stays within 5% (it is far tighter: the
// schedule is absolute, so late wake-ups do not add up).
func TestReplayHoldsFixedRate(t *testing.T) {
	const pps, n = 2000, 20001
	file := sharedPcap(t, "zeek/echo-connections.pcap")
	v := newVethPair(t, 1500)
	d := v.startTcpdump(t)
	replayOnto(t, v, file, Pace{PPS, pps}, 1, n)
	got := d.waitFor(t, n)
	if len(got) != n {
		t.Fatalf("captured %d packets, want %d", len(got), n)
	}
	span := got[n-1].ts.Sub(got[0].ts)
	rate := float64(n-1) / span.Seconds()
	lag := lateness(got, func(i int) time.Duration { return time.Duration(i) * time.Second / pps })
	t.Logf("achieved %.2f packets/s over %v (%.3f%% off); arrival vs schedule: %s", rate, span, 100*(rate-pps)/pps, lag)
	if math.Abs(rate-pps)/pps > 0.05 {
		t.Fatalf("achieved %.1f packets/s, want %d within 5%%", rate, pps)
	}
	// Second by second, for the log only: a node this busy can stall any
	// process for hundreds of milliseconds (measured: 410 ms at load 20 on 2
	// cores), after which the absolute schedule sends the overdue packets at
	// once, as tcpreplay does; the 5% over 10 s above is the requirement.
	lo, hi := math.Inf(1), 0.0
	for s := 0; s+1 < n/pps; s++ {
		w := got[s*pps : (s+1)*pps+1]
		r := float64(pps) / w[pps].ts.Sub(w[0].ts).Seconds()
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	t.Logf("single seconds ranged from %.1f to %.1f packets/s", lo, hi)
}

// At 100,000 packets/s, where batches form whenever the sender wakes late,
// the rate the peer's receive counter shows between 10% and 90% of the run
// (a least-squares slope over millisecond samples, so that one stall at
// either end does not skew it) stays within 3% of the rate asked (the aim is
// 1%; the margin is for stalls of a busy shared node), every packet arrives,
// and none arrives before it is due: batching frames not yet due keeps the
// average but sends bursts early.
func TestReplayHoldsFixedRateAt100kpps(t *testing.T) {
	const pps, n = 100_000, 300_001
	file := sharedPcap(t, "zeek/echo-connections.pcap") // 82,582 packets, looped
	v := newVethPair(t, 1500)
	rx := v.rxPackets(t)
	base := rx()
	samples := make(chan []rxSample, 1)
	stop := make(chan struct{})
	go func() { samples <- sampleRx(rx, base, stop) }()
	r, err := New(Config{Open: OpenFile(file), Pace: Pace{PPS, pps}, Limit: n, Target: v.openSender(t)})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rx()-base < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	got := <-samples
	if recv := rx() - base; sum.PacketsSent != n || recv != n {
		t.Fatalf("sent %d, peer received %d, want %d", sum.PacketsSent, recv, n)
	}
	rate := slope(got, n/10, n*9/10)
	t.Logf("peer received %.0f packets/s between 10%% and 90%% (%.3f%% off); %s", rate, 100*(rate-pps)/pps, sum)
	if math.Abs(rate-pps)/pps > 0.03 {
		t.Errorf("peer received %.0f packets/s, want %d within 3%%", rate, pps)
	}
	// Packets due by a moment: 1 at the start, then one per 1/pps. Two more
	// allow for the wall clock's rounding; a batch sent early shows as tens.
	start := sum.Started
	ahead := 0
	for _, x := range got {
		if x.at.Before(start) {
			continue
		}
		due := int(x.at.Sub(start).Seconds()*pps) + 1
		ahead = max(ahead, int(x.count)-due)
	}
	t.Logf("at most %d packets received ahead of schedule in %d samples", ahead, len(got))
	if ahead > 2 {
		t.Errorf("%d packets received before they were due", ahead)
	}
}

type rxSample struct {
	at    time.Time
	count uint64
}

// sampleRx reads the counter every millisecond until stop.
func sampleRx(rx func() uint64, base uint64, stop <-chan struct{}) []rxSample {
	var s []rxSample
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return s
		case <-tick.C:
			c := rx() - base
			s = append(s, rxSample{time.Now(), c})
		}
	}
}

// slope is the least-squares packets per second of the samples whose count
// lies in [from, to].
func slope(s []rxSample, from, to uint64) float64 {
	var n, sx, sy, sxx, sxy float64
	var t0 time.Time
	for _, x := range s {
		if x.count < from || x.count > to {
			continue
		}
		if n == 0 {
			t0 = x.at
		}
		dx, dy := x.at.Sub(t0).Seconds(), float64(x.count)
		n, sx, sy, sxx, sxy = n+1, sx+dx, sy+dy, sxx+dx*dx, sxy+dx*dy
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// With a multiplier, each packet arrives when the capture's own timing,
// divided by the multiplier, says it is due.
func TestReplayMultiplierKeepsTiming(t *testing.T) {
	for _, c := range []struct {
		file string
		mult float64
	}{
		// 377 packets over 4.9 s in bursts: sped up, due over 2.5 s.
		{"zeek/tcp/ssh-dups.pcap", 2},
		// 400 packets over 86 ms, gaps of 0.1 to 0.3 ms: slowed down to gaps
		// of 3 to 10 ms, so the gap check below tells multipliers apart.
		{"zeek/snmp/snmpwalk-short.pcap", 0.03},
	} {
		t.Run(filepath.Base(c.file), func(t *testing.T) { checkMultiplier(t, c.file, c.mult) })
	}
}

func checkMultiplier(t *testing.T, rel string, mult float64) {
	file := sharedPcap(t, rel)
	want, err := readCapture(file)
	if err != nil {
		t.Fatal(err)
	}
	v := newVethPair(t, 1500)
	d := v.startTcpdump(t)
	replayOnto(t, v, file, Pace{Multiplier, mult}, 1, 0)
	got := d.waitFor(t, len(want))
	sameFrames(t, got, want, 1)
	due := func(i int) time.Duration { return time.Duration(float64(want[i].ts.Sub(want[0].ts)) / mult) }
	lag := lateness(got, due)
	t.Logf("arrival vs capture timing / %g: %s; span %v, due %v", mult, lag, got[len(got)-1].ts.Sub(got[0].ts), due(len(want)-1))
	// A busy CI node can stall any process for hundreds of milliseconds
	// (measured here at load 20 on 2 cores: up to 410 ms), which moves the
	// tail of the distribution and the last packet, so those are logged only.
	// The median catches a multiplier ignored, inverted or applied to a
	// drifting clock: those put most packets hundreds of milliseconds off.
	if lag.median < -10*time.Millisecond || lag.median > 10*time.Millisecond {
		t.Errorf("arrivals off the capture's timing: %s", lag)
	}
	// Gap by gap: most must match the capture's own gap divided by the multiplier.
	good, wide := 0, 0
	for i := 1; i < len(got); i++ {
		g, w := got[i].ts.Sub(got[i-1].ts), due(i)-due(i-1)
		if (g - w).Abs() <= 2*time.Millisecond {
			good++
		}
		if w > 4*time.Millisecond {
			wide++
		}
	}
	t.Logf("%d of %d gaps within 2ms of the capture's gap / %g (%d gaps due over 4ms apart)", good, len(got)-1, mult, wide)
	if good < (len(got)-1)*3/4 {
		t.Errorf("only %d of %d gaps within 2ms of the capture's gap / %g", good, len(got)-1, mult)
	}
}

type lagStats struct{ min, median, p90, p95, p99, max time.Duration }

func (l lagStats) String() string {
	return "min " + l.min.String() + ", median " + l.median.String() + ", p90 " + l.p90.String() + ", p95 " + l.p95.String() +
		", p99 " + l.p99.String() + ", max " + l.max.String()
}

// lateness compares each arrival, relative to the first, with when it was due.
func lateness(got []capturedPacket, due func(i int) time.Duration) lagStats {
	d := make([]time.Duration, len(got))
	for i := range got {
		d[i] = got[i].ts.Sub(got[0].ts) - due(i)
	}
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return lagStats{d[0], d[len(d)/2], d[len(d)*90/100], d[len(d)*95/100], d[len(d)*99/100], d[len(d)-1]}
}

// The command, as a ReplayJob runs it, onto an interface at a fixed bit rate.
func TestReplayCommandOntoVethAtMbps(t *testing.T) {
	const mbps = 8.0
	path := sharedPcap(t, "ndpi/teamviewer.pcap") // 352 packets, 172,990 bytes: 0.17 s per loop at 8 Mbit/s
	want, err := readCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	v := newVethPair(t, 1500)
	d := v.startTcpdump(t)
	var out string
	v.inNetns(t, func() {
		out, err = execute(NewCommand(), "--file", path, "--interface", v.send, "--mbps", "8", "--loop", "3", "--metrics-addr", "")
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log(out)
	got := d.waitFor(t, 3*len(want))
	sameFrames(t, got, want, 3)
	// Packet i is due when the bytes before it have had their time at the
	// rate, so the first-to-last span carries all frames but the last.
	var bits float64
	for _, p := range got[:len(got)-1] {
		bits += float64(len(p.data)) * 8
	}
	rate := bits / got[len(got)-1].ts.Sub(got[0].ts).Seconds() / 1e6
	t.Logf("achieved %.3f Mbit/s", rate)
	if math.Abs(rate-mbps)/mbps > 0.05 {
		t.Fatalf("achieved %.3f Mbit/s, want %.1f within 5%%", rate, mbps)
	}
}

// A capture of another link type cannot go onto an Ethernet interface as it
// was captured: the pre-scan says so and nothing is sent.
func TestReplayRefusesOtherLinkTypesOnAnInterface(t *testing.T) {
	path := sharedPcap(t, "gopacket/pcap/test_loopback.pcap") // BSD loopback (DLT_NULL) framing
	v := newVethPair(t, 1500)
	var out string
	var err error
	v.inNetns(t, func() {
		out, err = execute(NewCommand(), "--file", path, "--interface", v.send, "--top-speed", "--metrics-addr", "")
	})
	want := "packet 1 has link type Null (0), which interface " + v.send + " cannot send"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	if strings.Contains(out, "Actual:") {
		t.Fatalf("a replay ran:\n%s", out)
	}
}
