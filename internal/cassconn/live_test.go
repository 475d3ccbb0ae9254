package cassconn_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/internal/testpki"
)

// These tests run against the node of hack/cassandra.sh, which has password
// authentication and CassandraAuthorizer on, as its unprivileged test role.

func TestLiveWriteAndReadBack(t *testing.T) {
	cfg := cassandratest.Config(t)
	cfg.Keyspace = cassandratest.NewKeyspace(t, cfg)
	s, err := cfg.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Query(`CREATE TABLE flows (sensor text, bucket bigint, id timeuuid, payload blob,
		PRIMARY KEY ((sensor, bucket), id))`).Exec(); err != nil {
		t.Fatal(err)
	}
	id := gocql.TimeUUID()
	payload := []byte{0, 1, 2, 0xff, 'x'}
	if err := s.Query(`INSERT INTO flows (sensor, bucket, id, payload) VALUES (?, ?, ?, ?)`,
		"node-a", int64(1764000000), id, payload).Exec(); err != nil {
		t.Fatal(err)
	}
	var gotID gocql.UUID
	var got []byte
	if err := s.Query(`SELECT id, payload FROM flows WHERE sensor = ? AND bucket = ?`,
		"node-a", int64(1764000000)).Scan(&gotID, &got); err != nil {
		t.Fatal(err)
	}
	if gotID != id || string(got) != string(payload) {
		t.Fatalf("read back id %v payload %x, wrote %v %x", gotID, got, id, payload)
	}
	// The keyspace named in the config is the session's default.
	var n int
	if err := s.Query(`SELECT count(*) FROM flows`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("count: %d, %v", n, err)
	}
}

// The test role is no superuser: keyspaces it did not create stay closed to it.
func TestLiveRoleIsNotSuperuser(t *testing.T) {
	cfg := cassandratest.Config(t)
	s, err := cfg.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Query(`SELECT salted_hash FROM system_auth.roles WHERE role = 'cassandra'`).Exec()
	if err == nil {
		t.Fatal("the test role read system_auth.roles: it should not have that permission")
	}
	if !strings.Contains(err.Error(), "permission") {
		t.Fatalf("want a permission error, got %v", err)
	}
}

func TestLiveWrongPassword(t *testing.T) {
	cfg := cassandratest.Config(t)
	cfg.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{cassconn.FilePassword: "not-the-password"})
	s, err := cfg.Session()
	if err == nil {
		s.Close()
		t.Fatal("logged in with a wrong password")
	}
	msg := err.Error()
	for _, want := range []string{"127.0.0.1", "authentication failed", cfg.SecretDir, "password are incorrect"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "not-the-password") {
		t.Errorf("error shows the password: %q", msg)
	}
}

func TestLiveNoCredentials(t *testing.T) {
	cfg := cassandratest.Config(t)
	cfg.SecretDir = ""
	start := time.Now()
	s, err := cfg.Session()
	if err == nil {
		s.Close()
		t.Fatal("connected without credentials to a node that requires them")
	}
	if !strings.Contains(err.Error(), "authentication required") || !strings.Contains(err.Error(), "--cassandra-secret-dir (not set") {
		t.Errorf("want an 'authentication required' error, got %v", err)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestLiveTLS(t *testing.T) {
	cfg := cassandratest.TLSConfig(t)
	s, err := cfg.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version string
	if err := s.Query(`SELECT release_version FROM system.local`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "5.") {
		t.Errorf("release_version %q", version)
	}
}

// A node whose certificate the CA in the secret does not vouch for is refused,
// before any password is sent.
func TestLiveTLSRejectsUnknownCA(t *testing.T) {
	cfg := cassandratest.TLSConfig(t)
	cfg.SecretDir = testenv.CopyDir(t, cfg.SecretDir,
		map[string]string{cassconn.FileCA: testpki.NewCA(t, "not the node's CA").CertPEM})
	s, err := cfg.Session()
	if err == nil {
		s.Close()
		t.Fatal("connected to a node whose certificate the configured CA did not sign")
	}
	if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("want a certificate error, got %v", err)
	}
}

// Clear text to the TLS-only port must not connect.
func TestLiveTLSPortRefusesClearText(t *testing.T) {
	cfg := cassandratest.TLSConfig(t)
	cfg.TLS = false
	plain := cassandratest.Config(t)
	cfg.SecretDir = plain.SecretDir
	cl, err := cfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	cl.ConnectTimeout = 3 * time.Second
	s, err := cl.CreateSession()
	if err == nil {
		s.Close()
		t.Fatal("clear-text session on the TLS port")
	}
}
