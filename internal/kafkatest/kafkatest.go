package kafkatest

import (
	"capfleet.dev/capfleet/internal/testenv"

	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// NotRunning starts the message a test gives when it cannot reach the broker.
const NotRunning = "Kafka is not running: start it with hack/kafka.sh start"

// probe remembers, per test binary, whether the broker answered, so a missing
// broker costs one wait and not one per test.
var probe struct {
	once sync.Once
	env  Env
	err  error
}

// Available returns the broker's env, or ends the test: it fails under CI=true
// (CI must have started Kafka) and skips otherwise.
func Available(t testing.TB) Env {
	t.Helper()
	probe.once.Do(func() {
		path, err := EnvPath()
		if err != nil {
			probe.err = err
			return
		}
		if probe.env, err = ReadEnv(path); err != nil {
			probe.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		probe.err = WaitReady(ctx, probe.env.Plain(), probe.env.Secure(), probe.env.MTLS())
	})
	if probe.err != nil {
		msg := fmt.Sprintf("%s (%v)", NotRunning, probe.err)
		testenv.Missing(t, "%s", msg)
	}
	return probe.env
}

// Plain is the config for the broker's PLAINTEXT listener.
func Plain(t testing.TB) kafkaconn.Config {
	t.Helper()
	return Available(t).Plain()
}

// Secure is the config for the broker's SASL_SSL listener (TLS + SCRAM-SHA-512),
// with the secret dir written by hack/kafka.sh.
func Secure(t testing.TB) kafkaconn.Config {
	t.Helper()
	return Available(t).Secure()
}

// MTLS is the config for the broker's SSL listener that requires a client
// certificate, with a secret dir holding ca.crt, tls.crt and tls.key.
func MTLS(t testing.TB) kafkaconn.Config {
	t.Helper()
	return Available(t).MTLS()
}

// NewTopic creates a topic with a name unique to this test run, waits until all
// its partitions have a leader, and deletes it when the test ends.
func NewTopic(t testing.TB, cfg kafkaconn.Config, partitions int) string {
	t.Helper()
	name := topicName(t.Name())
	CreateTopic(t, cfg, name, partitions)
	return name
}

// CreateTopic creates the topic name with every partition led, and deletes it when the test ends.
func CreateTopic(t testing.TB, cfg kafkaconn.Config, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := withAdmin(cfg, func(adm *kadm.Client) error {
		resp, err := adm.CreateTopic(ctx, int32(partitions), 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
		return waitLeaders(ctx, adm, name, partitions)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := withAdmin(cfg, func(adm *kadm.Client) error {
			resp, err := adm.DeleteTopic(ctx, name)
			if err == nil {
				err = resp.Err
			}
			return err
		})
		if err != nil {
			t.Errorf("delete topic %s: %v", name, err)
		}
	})
}

func withAdmin(cfg kafkaconn.Config, f func(*kadm.Client) error) error {
	cl, err := cfg.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(kadm.NewClient(cl))
}

// waitLeaders returns once the broker's metadata lists every partition of the
// topic with a leader, so the test's first produce or offset lookup does not
// race the controller.
func waitLeaders(ctx context.Context, adm *kadm.Client, topic string, partitions int) error {
	for {
		td, err := adm.ListTopics(ctx, topic)
		if err == nil {
			d := td[topic]
			led := 0
			for _, p := range d.Partitions {
				if p.Err == nil && p.Leader >= 0 {
					led++
				}
			}
			if d.Err == nil && led == partitions {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: partitions without a leader: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// topicName turns a test name into a legal Kafka topic name ([a-zA-Z0-9._-],
// at most 249 characters) with a random suffix, unique across runs.
func topicName(test string) string {
	var b strings.Builder
	for _, r := range test {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 200 {
		s = s[:200]
	}
	return "test-" + s + "-" + randomHex(4)
}

// NewUser creates a SCRAM user with a random password (mechanism is
// SCRAM-SHA-256 or SCRAM-SHA-512) and returns the SASL_SSL config for it, with a
// secret dir of its own in the kafkaconn format. The user is deleted when the
// test ends. Tests use it to hand a component credentials nobody else holds.
func NewUser(t testing.TB, mechanism string) kafkaconn.Config {
	t.Helper()
	env := Available(t)
	mechs := map[string]kadm.ScramMechanism{
		kafkaconn.MechanismScramSHA256: kadm.ScramSha256,
		kafkaconn.MechanismScramSHA512: kadm.ScramSha512,
	}
	mech, ok := mechs[mechanism]
	if !ok {
		t.Fatalf("kafkatest.NewUser: mechanism %q is not SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
	}
	user, password := "user-"+randomHex(6), randomHex(24)
	alter := func(del []kadm.DeleteSCRAM, up []kadm.UpsertSCRAM) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return withAdmin(env.Plain(), func(adm *kadm.Client) error {
			res, err := adm.AlterUserSCRAMs(ctx, del, up)
			if err == nil {
				res.EachError(func(r kadm.AlteredUserSCRAM) { err = fmt.Errorf("user %s: %w", r.User, r.Err) })
			}
			return err
		})
	}
	if err := alter(nil, []kadm.UpsertSCRAM{{User: user, Mechanism: mech, Iterations: 4096, Password: password}}); err != nil {
		t.Fatalf("create SCRAM user: %v", err)
	}
	t.Cleanup(func() {
		if err := alter([]kadm.DeleteSCRAM{{User: user, Mechanism: mech}}, nil); err != nil {
			t.Errorf("delete SCRAM user: %v", err)
		}
	})

	dir := t.TempDir()
	ca, err := os.ReadFile(filepath.Join(env.SecretDir, kafkaconn.FileCA))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{kafkaconn.FileCA: string(ca), kafkaconn.FileMechanism: mechanism + "\n",
		kafkaconn.FileUsername: user + "\n", kafkaconn.FilePassword: password + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := env.Secure()
	cfg.SecretDir = dir

	// The broker learns of new credentials through its metadata log, a moment
	// after the controller acknowledged them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitReady(ctx, cfg); err != nil {
		t.Fatalf("new SCRAM user %s cannot log in: %v", user, err)
	}
	return cfg
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
