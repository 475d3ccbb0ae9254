package kafkatest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

// writeEnv makes an env file as hack/kafka.sh writes it and returns its path.
func writeEnv(t *testing.T, body string) string {
	return filepath.Join(testenv.WriteDir(t, map[string]string{"env": body}), "env")
}

func TestReadEnv(t *testing.T) {
	p := writeEnv(t, "# written by hack/kafka.sh\nKAFKA_VERSION=4.4.0\nKAFKA_BROKERS=127.0.0.1:9092, 127.0.0.2:9092\n\n"+
		"KAFKA_SECURE_BROKERS=127.0.0.1:9093\nKAFKA_SECRET_DIR=\"/x/client-secret\"\n"+
		"KAFKA_MTLS_BROKERS=127.0.0.1:9095\nKAFKA_MTLS_SECRET_DIR=/x/client-mtls\n")
	e, err := ReadEnv(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(e.Brokers, ",") != "127.0.0.1:9092,127.0.0.2:9092" ||
		strings.Join(e.SecureBrokers, ",") != "127.0.0.1:9093" || e.SecretDir != "/x/client-secret" {
		t.Fatalf("parsed %+v", e)
	}
	if s := e.Secure(); !s.TLS || s.SecretDir != e.SecretDir || s.Brokers[0] != "127.0.0.1:9093" {
		t.Errorf("Secure() = %+v", s)
	}
	if m := e.MTLS(); !m.TLS || m.SecretDir != "/x/client-mtls" || m.Brokers[0] != "127.0.0.1:9095" {
		t.Errorf("MTLS() = %+v", m)
	}
	sec := e.Secure()
	sec.Brokers[0] = "changed:1"
	if e.Secure().Brokers[0] != "127.0.0.1:9093" {
		t.Errorf("editing one config's brokers changed the next one's")
	}
	if p := e.Plain(); p.TLS || p.SecretDir != "" || len(p.Brokers) != 2 {
		t.Errorf("Plain() = %+v", p)
	}
}

func TestReadEnvErrors(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"not key=value":  {"KAFKA_BROKERS\n", ":1: not KEY=value"},
		"secure missing": {"KAFKA_BROKERS=a:1\nKAFKA_SECRET_DIR=/s\nKAFKA_MTLS_BROKERS=a:3\nKAFKA_MTLS_SECRET_DIR=/m\n", "KAFKA_SECURE_BROKERS is not set"},
		"dir missing":    {"KAFKA_BROKERS=a:1\nKAFKA_SECURE_BROKERS=a:2\nKAFKA_MTLS_BROKERS=a:3\nKAFKA_MTLS_SECRET_DIR=/m\n", "KAFKA_SECRET_DIR is not set"},
		"mtls missing":   {"KAFKA_BROKERS=a:1\nKAFKA_SECURE_BROKERS=a:2\nKAFKA_SECRET_DIR=/s\n", "KAFKA_MTLS_BROKERS is not set"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadEnv(writeEnv(t, c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := ReadEnv(filepath.Join(t.TempDir(), "absent")); !os.IsNotExist(err) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestTopicName(t *testing.T) {
	legal := regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	long := strings.Repeat("x", 400)
	a, b := topicName("TestX/sub case#1"), topicName("TestX/sub case#1")
	if a == b {
		t.Errorf("two calls gave the same name %q", a)
	}
	for _, n := range []string{a, topicName(long), topicName("ünïcode")} {
		if !legal.MatchString(n) {
			t.Errorf("illegal topic name %q", n)
		}
	}
	if !strings.HasPrefix(a, "test-TestX-sub-case-1-") {
		t.Errorf("name %q does not tell the test", a)
	}
}
