package nfcmd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"capfleet.dev/capfleet/netflow/collector"
	"capfleet.dev/capfleet/netflow/ipfix"
	"capfleet.dev/capfleet/processor/flow"
)

// benchStream is an IPFIX stream of n flows (2n records) as capfleet's exporter writes it: the same
// datagrams go to both collectors.
func benchStream(b *testing.B, n int) [][]byte {
	l := listenUDP(b)
	e, err := ipfix.Dial([]string{"127.0.0.1:" + l.port()}, ipfix.Config{})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range n {
		r := flow.Record{TS: t0.Add(time.Duration(i) * time.Millisecond), LastTS: t0.Add(time.Duration(i)*time.Millisecond + time.Second),
			ConnID:  flow.ConnID{OrigH: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), OrigP: uint16(i), RespH: "192.0.2.1", RespP: 443},
			IPProto: 6, OrigPkts: 10, OrigIPBytes: 1000, RespPkts: 8, RespIPBytes: 9000, OrigFlags: 0x1b, RespFlags: 0x1b}
		if err := e.Add(&r); err != nil {
			b.Fatal(err)
		}
		if i%500 == 0 { // the socket of the listener is the bound, not the sender
			time.Sleep(time.Millisecond)
		}
	}
	e.Close()
	dgs := l.quiet()
	if len(dgs) != int(e.Stats.Messages) {
		b.Fatalf("recorded %d of %d messages", len(dgs), e.Stats.Messages)
	}
	out := make([][]byte, len(dgs))
	for i, d := range dgs {
		out[i] = d.payload
	}
	return out
}

// blast sends the stream to port as fast as the socket takes it and returns how long that took.
func blast(b *testing.B, port string, stream [][]byte) time.Duration {
	c, err := net.Dial("udp", "127.0.0.1:"+port)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for _, d := range stream {
		c.Write(d)
	}
	return time.Since(start)
}

// BenchmarkCollectVsNfcapd sends one IPFIX stream (BENCH_NETFLOW_FLOWS flows, default 200,000: twice
// as many records) at top speed over loopback to `capfleet collect`'s receiver (decoding and counting;
// Cassandra left out, as nfcapd writes a local file) and to nfcapd, one at a time, and reports for each
// the records it received per second of the send (both are offered the stream at the rate the sender
// reaches; the one that keeps up loses nothing) and the share of the stream it lost. Run it with
// -benchtime=1x: one iteration is one whole stream.
func BenchmarkCollectVsNfcapd(b *testing.B) {
	needTools(b, "nfcapd")
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_NETFLOW_FLOWS")); err == nil && v > 0 {
		n = v
	}
	stream := benchStream(b, n)
	want := float64(2 * n)
	b.Run("capfleet", func(b *testing.B) {
		for range b.N {
			c, err := collector.New(collector.Config{Listen: "127.0.0.1:0", ReadBuffer: 64 << 20}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			_, port, _ := net.SplitHostPort(c.Addr().String())
			sent := blast(b, port, stream)
			// Received is what the decoder counted once the socket went quiet.
			last, at := uint64(0), time.Now()
			for time.Since(at) < 500*time.Millisecond {
				time.Sleep(50 * time.Millisecond)
				if r := c.C.Records.Load(); r != last {
					last, at = r, time.Now()
				}
			}
			cancel()
			<-done
			report(b, float64(last), want, sent)
		}
	})
	b.Run("nfcapd", func(b *testing.B) {
		for range b.N {
			nf := startNfcapd(b)
			sent := blast(b, nf.port, stream)
			time.Sleep(time.Second) // nfcapd tells its count only when it stops
			nf.stop(b)
			var got float64
			if m := nfFlows.FindStringSubmatch(nf.log.String()); m != nil {
				got, _ = strconv.ParseFloat(m[1], 64)
			}
			report(b, got, want, sent)
		}
	})
}

func report(b *testing.B, got, want float64, elapsed time.Duration) {
	b.ReportMetric(got/elapsed.Seconds(), "records/s")
	b.ReportMetric(100*(want-got)/want, "%lost")
	b.Logf("%.0f of %.0f records in %s", got, want, elapsed)
}

var nfFlows = regexp.MustCompile(`Flows: (\d+)`)
