package sensor

import (
	"capfleet.dev/capfleet/internal/testenv"

	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
)

// privateBroker is a Kafka of this test's own, started by hack/kafka.sh with
// its own CAPFLEET_RUN and KAFKA_PORT, so crashing it disturbs nobody.
type privateBroker struct {
	run, port, root string
	cfg             kafkaconn.Config
}

func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		failOrSkip(t, "java is missing, hack/kafka.sh cannot start a private broker: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b := &privateBroker{run: t.TempDir(), port: strconv.Itoa(testenv.FreePortRun(t, 4, 19200, 20000)), root: root}
	if out, err := b.script("start"); err != nil {
		failOrSkip(t, "hack/kafka.sh start (private, port %s): %v\n%s", b.port, err, out)
	}
	t.Cleanup(func() {
		if out, err := b.script("stop"); err != nil {
			t.Errorf("hack/kafka.sh stop (private): %v\n%s", err, out)
		}
	})
	env, err := kafkatest.ReadEnv(filepath.Join(b.run, "kafka", "env"))
	if err != nil {
		t.Fatal(err)
	}
	b.cfg = env.Plain()
	return b
}

func (b *privateBroker) script(cmd string) (string, error) {
	c := exec.Command("bash", "hack/kafka.sh", cmd)
	c.Dir = b.root
	c.Env = append(os.Environ(), "CAPFLEET_RUN="+b.run, "KAFKA_PORT="+b.port)
	out, err := c.CombinedOutput()
	return string(out), err
}

// crash ends the broker with SIGKILL and returns the command line that brings it back.
func (b *privateBroker) crash(t *testing.T) []string {
	t.Helper()
	return testenv.CrashService(t, filepath.Join(b.run, "kafka.pid"), "kafka.Kafka")
}

// restart runs the broker again on its data.
func (b *privateBroker) restart(t *testing.T, argv []string) {
	t.Helper()
	testenv.RestartService(t, argv, b.root, filepath.Join(b.run, "kafka.pid"))
}

// The broker process is killed while the sensor captures and publishes (records
// in flight) and started again on its data: the sensor never exits, and every
// captured packet ends up in the topic or in a drop counter with its cause,
// never neither and never twice (the idempotent producer dedupes its retries).
func TestBrokerCrashAndRestart(t *testing.T) {
	n := newVethNS(t)
	b := startPrivateBroker(t)
	topic := kafkatest.NewTopic(t, b.cfg, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	all, _ := readPcap(t, file)

	cfg := e2eConfig(n, b.cfg, topic)
	cfg.BufferPackets = 300
	cfg.FlushTimeout = 2 * time.Minute
	s := startSensor(t, cfg)

	// Slow enough (about 1.7 s for the file) that the crash lands while packets are being captured
	// and published.
	type result struct {
		out []byte
		err error
	}
	replayed := make(chan result, 1)
	go func() {
		out, err := exec.Command("ip", "netns", "exec", n.Name, "tcpreplay", "-i", n.Tx, "--pps", "1000", file).CombinedOutput()
		replayed <- result{out, err}
	}()
	// In flight: some published, and some captured but not yet acknowledged by the broker.
	var before Counters
	waitFor(t, "packets published while others wait in the producer", func() bool {
		before = s.Counters()
		return before.PacketsPublished >= 100 && before.Buffered() > 0
	})
	argv := b.crash(t)
	r := <-replayed
	ok, failed := tcpreplayOK.FindSubmatch(r.out), tcpreplayFailed.FindSubmatch(r.out)
	if r.err != nil || ok == nil || failed == nil || string(failed[1]) != "0" {
		t.Fatalf("tcpreplay did not send cleanly: %v\n%s", r.err, r.out)
	}
	sent, _ := strconv.Atoi(string(ok[1]))
	if before.PacketsCaptured >= uint64(sent) {
		t.Fatalf("the crash came after the whole file was captured (%d of %d): nothing was in flight", before.PacketsCaptured, sent)
	}
	waitFor(t, "every packet captured", func() bool {
		return s.Counters().PacketsCaptured >= uint64(sent)
	})
	during := s.Counters()
	if during.BufferDrops == 0 {
		t.Fatalf("the outage did not bite: %+v", during)
	}
	t.Logf("crashed with %d of %d packets captured, %d published, %d in the producer", before.PacketsCaptured, sent, before.PacketsPublished, before.Buffered())
	b.restart(t, argv)
	deadline := time.Now().Add(5 * time.Minute) // a JVM boot on a busy machine
	for s.Counters().Buffered() > 0 {
		select {
		case err := <-s.done:
			t.Fatalf("the sensor exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("buffer not delivered 5 minutes after the restart: %+v", s.Counters())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop(t)

	c := s.Counters()
	t.Logf("counters: %+v", c)
	if c.PacketsCaptured != uint64(sent) ||
		c.PacketsPublished+c.BufferDrops+c.ProduceFailures != c.PacketsCaptured {
		t.Errorf("captured %d of %d; published %d + buffer drops %d + produce failures %d",
			c.PacketsCaptured, sent, c.PacketsPublished, c.BufferDrops, c.ProduceFailures)
	}
	recs := consumeAll(t, b.cfg, topic)
	if uint64(len(recs)) != c.PacketsPublished {
		t.Fatalf("topic holds %d records, the sensor counted %d published", len(recs), c.PacketsPublished)
	}
	// Which packets the full buffer dropped depends on timing; that none is in the topic more often
	// than in the file does not.
	inFile, inTopic := multiset(all), multiset(frames(recs))
	for frame, k := range inTopic {
		if k > inFile[frame] {
			t.Fatalf("a frame is %d times in the topic, %d in the file: a retry was stored twice", k, inFile[frame])
		}
	}
	checkRecords(t, recs, n.Rx)
}
