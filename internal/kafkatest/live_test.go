package kafkatest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// eventually polls cond until it holds or 30s pass; the broker applies
// metadata changes (deleted topics and users) asynchronously.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestNewTopicCreatesAndDeletes(t *testing.T) {
	cfg := Plain(t)
	var topic string
	t.Run("create", func(t *testing.T) {
		topic = NewTopic(t, cfg, 3)
		err := withAdmin(cfg, func(adm *kadm.Client) error {
			td, err := adm.ListTopics(context.Background(), topic)
			if err == nil && len(td[topic].Partitions) != 3 {
				t.Errorf("topic %s has %d partitions, want 3", topic, len(td[topic].Partitions))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	eventually(t, "topic still listed after the test that made it", func() error {
		return withAdmin(cfg, func(adm *kadm.Client) error {
			td, err := adm.ListTopics(context.Background(), topic)
			if err != nil {
				return err
			}
			if d, ok := td[topic]; ok && d.Err == nil {
				return errors.New(topic + " exists")
			}
			return nil
		})
	})
}

func TestNewUserLogsInUntilDeleted(t *testing.T) {
	for _, mech := range []string{kafkaconn.MechanismScramSHA256, kafkaconn.MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			var cfg kafkaconn.Config
			keep := t.TempDir() // the user's own secret dir goes with its subtest
			t.Run("user", func(t *testing.T) {
				cfg = NewUser(t, mech)
				copyDir(t, cfg.SecretDir, keep)
				cfg.SecretDir = keep
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := Ping(ctx, cfg); err != nil {
					t.Fatalf("new user cannot log in: %v", err)
				}
			})
			eventually(t, "deleted user still logs in", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := Ping(ctx, cfg)
				if errors.Is(err, kerr.SaslAuthenticationFailed) {
					return nil
				}
				return errors.New("ping error " + errString(err))
			})
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
