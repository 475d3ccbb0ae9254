// Package kafkatest connects tests to the broker that hack/kafka.sh starts. It
// reads what the script wrote into .run/kafka/env and hands out kafkaconn
// configs for the PLAINTEXT and the SASL_SSL (SCRAM) listeners.
package kafkatest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/testenv"
)

// Keys of the env file written by hack/kafka.sh.
const (
	KeyBrokers       = "KAFKA_BROKERS"
	KeySecureBrokers = "KAFKA_SECURE_BROKERS"
	KeySecretDir     = "KAFKA_SECRET_DIR"
	KeyMTLSBrokers   = "KAFKA_MTLS_BROKERS"
	KeyMTLSSecretDir = "KAFKA_MTLS_SECRET_DIR"
)

// Env is what hack/kafka.sh says about the broker it runs.
type Env struct {
	Brokers       []string // PLAINTEXT listener
	SecureBrokers []string // SASL_SSL listener, SCRAM
	SecretDir     string   // kafkaconn secret dir for SecureBrokers
	MTLSBrokers   []string // SSL listener that requires a client certificate
	MTLSSecretDir string   // kafkaconn secret dir with ca.crt, tls.crt, tls.key
}

// Plain is the config for the PLAINTEXT listener.
func (e Env) Plain() kafkaconn.Config {
	return kafkaconn.Config{Brokers: clone(e.Brokers), ClientID: "capfleet-test"}
}

// Secure is the config for the SASL_SSL listener with the script's SCRAM user.
func (e Env) Secure() kafkaconn.Config {
	return kafkaconn.Config{Brokers: clone(e.SecureBrokers), TLS: true, SecretDir: e.SecretDir, ClientID: "capfleet-test"}
}

// MTLS is the config for the SSL listener that authenticates clients by certificate.
func (e Env) MTLS() kafkaconn.Config {
	return kafkaconn.Config{Brokers: clone(e.MTLSBrokers), TLS: true, SecretDir: e.MTLSSecretDir, ClientID: "capfleet-test"}
}

// clone keeps a test that edits its config's broker list from changing the
// list every later test of the binary gets.
func clone(s []string) []string { return append([]string(nil), s...) }

// EnvPath is where hack/kafka.sh writes its env file: $CAPFLEET_RUN/kafka/env,
// by default .run/kafka/env in the repository that holds the working directory.
func EnvPath() (string, error) {
	dir, err := testenv.RunDir("kafka")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "env"), nil
}

// ReadEnv parses the KEY=value lines of an env file written by hack/kafka.sh.
func ReadEnv(path string) (Env, error) {
	vals, err := testenv.ReadEnvFile(path)
	if err != nil {
		return Env{}, err
	}
	e := Env{
		Brokers:       splitList(vals[KeyBrokers]),
		SecureBrokers: splitList(vals[KeySecureBrokers]),
		SecretDir:     vals[KeySecretDir],
		MTLSBrokers:   splitList(vals[KeyMTLSBrokers]),
		MTLSSecretDir: vals[KeyMTLSSecretDir],
	}
	for _, k := range []string{KeyBrokers, KeySecureBrokers, KeySecretDir, KeyMTLSBrokers, KeyMTLSSecretDir} {
		if strings.TrimSpace(vals[k]) == "" {
			return Env{}, fmt.Errorf("%s: %s is not set", path, k)
		}
	}
	return e, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Ping asks the brokers of cfg for their metadata, which proves the listener,
// TLS and SASL all work.
func Ping(ctx context.Context, cfg kafkaconn.Config) (kadm.BrokerDetails, error) {
	cl, err := cfg.NewClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return kadm.NewClient(cl).ListBrokers(ctx)
}

// WaitReady pings every config until all answer or the context ends; it
// returns the last error seen when they never all did.
func WaitReady(ctx context.Context, cfgs ...kafkaconn.Config) error {
	for {
		var err error
		for _, c := range cfgs {
			attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = Ping(attempt, c)
			cancel()
			if err != nil {
				err = fmt.Errorf("%s: %w", strings.Join(c.Brokers, ","), err)
				break
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
