//go:build linux

package replay

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// benchReplay sends b.N packets of a real capture (looping as needed) at top
// speed and reports the achieved packet and bit rates.
func benchReplay(b *testing.B, target Target) {
	r, err := New(Config{Open: OpenFile(sharedPcap(b, "zeek/echo-connections.pcap")), Pace: Pace{Mode: TopSpeed},
		Loops: 0, Limit: uint64(b.N), Target: target})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Scan(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	sum, err := r.Run(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if sum.PacketsSent != uint64(b.N) {
		b.Fatalf("sent %d of %d (failed %d: %v)", sum.PacketsSent, b.N, sum.PacketsFailed, sum.FirstFailure)
	}
	_, mbps, pps := sum.Rates()
	b.ReportMetric(pps, "packets/s")
	b.ReportMetric(mbps, "Mbit/s")
}

// The engine alone: reading the capture, scheduling and accounting.
func BenchmarkReplayEngine(b *testing.B) { benchReplay(b, &discard{}) }

func BenchmarkReplayTopSpeedVeth(b *testing.B) {
	v := newVethPair(b, 1500)
	benchReplay(b, v.openSender(b))
}

func BenchmarkReplayTopSpeedTopic(b *testing.B) {
	cfg := kafkatest.Plain(b)
	topic := kafkatest.NewTopic(b, cfg, 3)
	ctx := context.Background()
	tg, err := OpenTopic(ctx, cfg, topic, TopicOptions{Node: "bench", Interface: "replay"})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	b.Logf("brokers %s", strings.Join(cfg.Brokers, ","))
	benchReplay(b, tg)
}

type discard struct{}

func (discard) Send(p Packet, done func(int, error)) { done(len(p.Data), nil) }
func (discard) Flush(context.Context) error          { return nil }
func (discard) Close() error                         { return nil }
func (discard) String() string                       { return "nowhere" }

// tcpreplay (Debian) on the same veth and capture, as the yardstick for
// BenchmarkReplayTopSpeedVeth: the rate it reports for the same packets.
func BenchmarkTcpreplayTopSpeedVeth(b *testing.B) {
	if _, err := exec.LookPath("tcpreplay"); err != nil {
		b.Skip("tcpreplay is not installed (hack/deps.sh installs it)")
	}
	v := newVethPair(b, 1500)
	file := sharedPcap(b, "zeek/echo-connections.pcap")
	b.ResetTimer()
	out, err := exec.Command("ip", "netns", "exec", v.ns, "tcpreplay", "-i", v.send, "--topspeed",
		"--limit", strconv.Itoa(b.N), "--loop", "0", file).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("tcpreplay: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Rated: [0-9.]+ Bps, ([0-9.]+) Mbps, ([0-9.]+) pps`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("no rate in tcpreplay's output:\n%s", out)
	}
	mbps, _ := strconv.ParseFloat(string(m[1]), 64)
	pps, _ := strconv.ParseFloat(string(m[2]), 64)
	b.ReportMetric(pps, "packets/s")
	b.ReportMetric(mbps, "Mbit/s")
}
