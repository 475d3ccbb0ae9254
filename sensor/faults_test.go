package sensor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// brokerGate stands between the sensor and the real broker: cut closes every
// connection and refuses new ones, as a broker that went away does; restore
// lets the client reconnect. Only this sensor loses the broker, so tests of
// other packages sharing it run on undisturbed.
type brokerGate struct {
	mu     sync.Mutex
	cutOff bool
	conns  []net.Conn
}

func (g *brokerGate) dial(ctx context.Context, network, host string) (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cutOff {
		return nil, errors.New("test: broker unreachable (gate cut)")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, host)
	if err == nil {
		g.conns = append(g.conns, c)
	}
	return c, err
}

func (g *brokerGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cutOff = true
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *brokerGate) restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cutOff = false
}

// The broker goes away while the sensor captures and comes back: the sensor
// keeps running, and every captured packet is either in the topic or counted
// as a buffer drop, never neither and never twice.
func TestBrokerOutageLosesNothingUncounted(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	all, _ := readPcap(t, file)

	gate := &brokerGate{}
	cfg := e2eConfig(n, kafka, topic)
	cfg.BufferPackets = 300 // far fewer than the file holds: the outage must overflow it
	cfg.kafkaOpts = []kgo.Opt{kgo.Dialer(gate.dial)}
	s := startSensor(t, cfg)

	gate.cut()
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet captured during the outage", func() bool {
		return s.Counters().PacketsCaptured >= uint64(sent)
	})
	during := s.Counters()
	if during.BufferDrops == 0 || during.PacketsPublished != 0 {
		t.Fatalf("the outage did not bite: %+v", during)
	}
	gate.restore()
	waitFor(t, "the buffer delivered after the broker came back", func() bool {
		return s.Counters().Buffered() == 0
	})
	s.stop(t)

	c := s.Counters()
	t.Logf("counters: %+v", c)
	if c.PacketsCaptured != uint64(sent) {
		t.Errorf("captured %d of %d", c.PacketsCaptured, sent)
	}
	if c.PacketsPublished+c.BufferDrops+c.ProduceFailures != c.PacketsCaptured {
		t.Errorf("published %d + buffer drops %d + produce failures %d != captured %d",
			c.PacketsPublished, c.BufferDrops, c.ProduceFailures, c.PacketsCaptured)
	}
	if c.PacketsPublished != uint64(cfg.BufferPackets) {
		t.Errorf("published %d, the buffer held %d", c.PacketsPublished, cfg.BufferPackets)
	}
	recs := consumeAll(t, kafka, topic)
	if uint64(len(recs)) != c.PacketsPublished {
		t.Fatalf("topic holds %d records, the sensor counted %d published", len(recs), c.PacketsPublished)
	}
	// What was kept is the start of the capture: the buffer filled first.
	if d := diffMultisets(multiset(all[:len(recs)]), multiset(frames(recs))); d != "" {
		t.Fatalf("topic vs the first %d packets of the file: %s", len(recs), d)
	}
	checkRecords(t, recs, n.Rx)
}

// A sensor stopped while the broker is away counts what it could not
// deliver as produce failures.
func TestStopDuringOutageCountsProduceFailures(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := sharedPcap(t, e2ePcap)

	gate := &brokerGate{}
	cfg := e2eConfig(n, kafka, topic)
	cfg.FlushTimeout = 500e6 // 0.5s: the broker will not come back
	cfg.kafkaOpts = []kgo.Opt{kgo.Dialer(gate.dial)}
	s := startSensor(t, cfg)
	gate.cut()
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet captured", func() bool { return s.Counters().PacketsCaptured >= uint64(sent) })
	s.stop(t)

	c := s.Counters()
	if c.ProduceFailures != uint64(sent) || c.PacketsPublished != 0 || c.BufferDrops != 0 {
		t.Errorf("want all %d packets counted as produce failures: %+v", sent, c)
	}
	if recs := consumeAll(t, kafka, topic); len(recs) != 0 {
		t.Errorf("topic holds %d records", len(recs))
	}
}

// Each mistake at start reads as one clear line, from the command itself.
func TestStartErrorsAreClear(t *testing.T) {
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	secure := kafkatest.Secure(t)
	wrongPass := t.TempDir()
	for _, f := range []string{"ca.crt", "sasl.mechanism", "username"} {
		b, err := os.ReadFile(filepath.Join(secure.SecretDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wrongPass, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(wrongPass, "password"), []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// --kafka-brokers is a list flag: given twice it would append, so each
	// case names its own.
	plain := strings.Join(kafka.Brokers, ",")
	common := []string{"--interfaces", "lo", "--topic", topic, "--metrics-addr", "", "--health-addr", ""}
	cases := map[string]struct {
		args []string
		want string
	}{
		"bad filter":        {[]string{"--kafka-brokers", plain, "--filter", "tcp port nonsense"}, `sensor: --filter "tcp port nonsense": unknown port 'nonsense'`},
		"missing interface": {[]string{"--kafka-brokers", plain, "--interfaces", "cfnope0"}, `sensor: interface "cfnope0" not found`},
		// Port 1 on loopback: nothing listens there, nothing leaves the host.
		"unreachable broker": {[]string{"--kafka-brokers", "127.0.0.1:1", "--kafka-start-timeout", "2s"},
			"sensor: kafka 127.0.0.1:1: unreachable for 2s: unable to dial: dial tcp 127.0.0.1:1: connect: connection refused"},
		"wrong password": {[]string{"--kafka-brokers", strings.Join(secure.Brokers, ","), "--kafka-tls", "--kafka-secret-dir", wrongPass},
			"authentication failed"},
		"missing topic": {[]string{"--kafka-brokers", plain, "--topic", "cf-no-such-topic"}, `topic "cf-no-such-topic" does not exist`},
		"snaplen":       {[]string{"--kafka-brokers", plain, "--snaplen", "0"}, "sensor: --snaplen 0: want 1 to 262144"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := NewCommand()
			cmd.SetArgs(append(append([]string{}, common...), c.args...))
			cmd.SetErr(&strings.Builder{})
			// Bounded, so a sensor that wrongly starts ends the case instead of hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil {
				t.Fatal("the sensor started")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Fatal("the password leaked into the message")
			}
		})
	}
}
