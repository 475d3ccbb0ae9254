// Package cassandratest connects tests to the node that hack/cassandra.sh
// starts: it reads what the script wrote under .run/cassandra and hands out
// cassconn configs logged in as the script's unprivileged test role.
package cassandratest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/testenv"
)

// Keys of the env file written by hack/cassandra.sh.
const (
	KeyHosts        = "CASSANDRA_HOSTS"
	KeyPort         = "CASSANDRA_PORT"
	KeySecretDir    = "CASSANDRA_SECRET_DIR"
	KeyTLSPort      = "CASSANDRA_TLS_PORT"
	KeyTLSSecretDir = "CASSANDRA_TLS_SECRET_DIR"
)

// NotRunning is the start of every message about a missing node, so a reader
// of a CI log knows at once which script to run.
const NotRunning = "Cassandra is not running: start it with hack/cassandra.sh start"

// NoTLSPort starts the message when the node runs without its TLS port.
const NoTLSPort = "Cassandra runs without its TLS port: restart it with hack/cassandra.sh stop; hack/cassandra.sh start (CASSANDRA_TLS_PORT unset or not 0)"

// Env is what hack/cassandra.sh says about the node it runs.
type Env struct {
	Hosts        []string
	Port         int
	SecretDir    string // username, password of the test role
	TLSPort      int    // 0 when the node has no TLS port
	TLSSecretDir string // username, password and ca.crt for TLSPort
}

// Plain is the config for the clear-text port, logged in as the test role.
func (e Env) Plain() cassconn.Config {
	return cassconn.Config{Hosts: append([]string(nil), e.Hosts...), Port: e.Port, SecretDir: e.SecretDir}
}

// TLS is the config for the TLS port, verifying the node against the script's CA.
func (e Env) TLS() cassconn.Config {
	return cassconn.Config{Hosts: append([]string(nil), e.Hosts...), Port: e.TLSPort, TLS: true, SecretDir: e.TLSSecretDir}
}

// Dir is where hack/cassandra.sh keeps its state: $CAPFLEET_RUN/cassandra, by
// default .run/cassandra in the repository that holds the working directory.
func Dir() (string, error) { return testenv.RunDir("cassandra") }

// ReadEnv parses the env file in dir. Relative secret dirs are taken relative to dir.
func ReadEnv(dir string) (Env, error) {
	path := filepath.Join(dir, "env")
	vals, err := testenv.ReadEnvFile(path)
	if err != nil {
		return Env{}, err
	}
	e := Env{SecretDir: filepath.Join(dir, "client-secret")}
	for _, h := range strings.Split(vals[KeyHosts], ",") {
		if h = strings.TrimSpace(h); h != "" {
			e.Hosts = append(e.Hosts, h)
		}
	}
	if len(e.Hosts) == 0 {
		return Env{}, fmt.Errorf("%s: %s is missing or empty", path, KeyHosts)
	}
	if e.Port, err = port(vals, KeyPort, true); err != nil {
		return Env{}, fmt.Errorf("%s: %w", path, err)
	}
	if e.TLSPort, err = port(vals, KeyTLSPort, false); err != nil {
		return Env{}, fmt.Errorf("%s: %w", path, err)
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if v := vals[KeySecretDir]; v != "" {
		e.SecretDir = abs(v)
	}
	e.TLSSecretDir = abs(vals[KeyTLSSecretDir])
	return e, nil
}

func port(vals map[string]string, key string, required bool) (int, error) {
	v, ok := vals[key]
	if !ok || v == "" {
		if required {
			return 0, fmt.Errorf("%s is missing", key)
		}
		return 0, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s=%q is not a TCP port", key, v)
	}
	return p, nil
}

// Unavailable stops the test because the node is missing: a failure under CI
// (CI=true), where the node must have been started, a skip elsewhere.
func Unavailable(t testing.TB, reason error) {
	t.Helper()
	unavailable(t, NotRunning, reason)
}

func unavailable(t testing.TB, headline string, reason error) {
	t.Helper()
	testenv.Missing(t, "%s (%v)", headline, reason)
}

// Load returns the script's env after checking that the node accepts TCP
// connections, or stops the test through Unavailable.
func Load(t testing.TB) Env {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		Unavailable(t, err)
	}
	e, err := ReadEnv(dir)
	if err != nil {
		Unavailable(t, err)
	}
	addr := net.JoinHostPort(e.Hosts[0], strconv.Itoa(e.Port))
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		Unavailable(t, fmt.Errorf("%s written by the script, but: %w", filepath.Join(dir, "env"), err))
	}
	c.Close()
	return e
}

// Config is the clear-text config of the node that hack/cassandra.sh runs,
// logged in as its test role, with no keyspace set.
func Config(t testing.TB) cassconn.Config {
	t.Helper()
	return Load(t).Plain()
}

// TLSConfig is the config of the node's TLS port; the test stops through
// Unavailable when the script started the node without one.
func TLSConfig(t testing.TB) cassconn.Config {
	t.Helper()
	e := Load(t)
	if e.TLSPort == 0 {
		unavailable(t, NoTLSPort, errors.New(KeyTLSPort+" is missing from its env file"))
	}
	return e.TLS()
}

// NewKeyspace creates a keyspace with a unique name (replication factor 1) as
// the test role, and drops it when the test ends. It returns the name.
func NewKeyspace(t testing.TB, cfg cassconn.Config) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "test_" + hex.EncodeToString(b[:])
	cfg.Keyspace = ""
	s, err := cfg.Session()
	if err != nil {
		t.Fatalf("cassandratest: %v", err)
	}
	defer s.Close()
	if err := s.Query(`CREATE KEYSPACE ` + name +
		` WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`).Exec(); err != nil {
		t.Fatalf("cassandratest: create keyspace %s: %v", name, err)
	}
	t.Cleanup(func() {
		s, err := cfg.Session()
		if err != nil {
			t.Errorf("cassandratest: drop keyspace %s: %v", name, err)
			return
		}
		defer s.Close()
		if err := s.Query(`DROP KEYSPACE IF EXISTS ` + name).Exec(); err != nil {
			t.Errorf("cassandratest: drop keyspace %s: %v", name, err)
		}
	})
	return name
}
