package cassandratest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/testenv"
)

// writeEnv makes a folder with an env file, as hack/cassandra.sh keeps its state.
func writeEnv(t *testing.T, body string) string {
	return testenv.WriteDir(t, map[string]string{"env": body})
}

func TestReadEnv(t *testing.T) {
	dir := writeEnv(t, "# written by hack/cassandra.sh\nCASSANDRA_HOSTS=127.0.0.1, 127.0.0.2\nCASSANDRA_PORT=9042\n"+
		"CASSANDRA_TLS_PORT=9142\nCASSANDRA_TLS_SECRET_DIR=tls-secret\n")
	e, err := ReadEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(e.Hosts, "|") != "127.0.0.1|127.0.0.2" || e.Port != 9042 || e.TLSPort != 9142 {
		t.Fatalf("env %+v", e)
	}
	if e.SecretDir != filepath.Join(dir, "client-secret") || e.TLSSecretDir != filepath.Join(dir, "tls-secret") {
		t.Fatalf("secret dirs %q %q", e.SecretDir, e.TLSSecretDir)
	}
	if c := e.Plain(); c.Port != 9042 || c.TLS || c.SecretDir != e.SecretDir || len(c.Hosts) != 2 {
		t.Fatalf("plain %+v", c)
	}
	if c := e.TLS(); c.Port != 9142 || !c.TLS || c.SecretDir != e.TLSSecretDir {
		t.Fatalf("tls %+v", c)
	}
}

func TestReadEnvErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"CASSANDRA_PORT=9042\n", "CASSANDRA_HOSTS is missing"},
		{"CASSANDRA_HOSTS=h\n", "CASSANDRA_PORT is missing"},
		{"CASSANDRA_HOSTS=h\nCASSANDRA_PORT=90420\n", `CASSANDRA_PORT="90420" is not a TCP port`},
		{"CASSANDRA_HOSTS=h\nCASSANDRA_PORT=9042\nCASSANDRA_TLS_PORT=x\n", "CASSANDRA_TLS_PORT"},
		{"CASSANDRA_HOSTS\n", "env:1: not KEY=value"},
	} {
		_, err := ReadEnv(writeEnv(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
	if _, err := ReadEnv(t.TempDir()); !os.IsNotExist(err) {
		t.Errorf("missing env file: %v", err)
	}
}

// recorder stands in for testing.T to see how Unavailable stops a test; like
// the real one it ends the goroutine, so run it through stopped.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recorder) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...); runtime.Goexit() }

func stopped(fn func(*recorder)) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() { defer close(done); fn(r) }()
	<-done
	return r
}

func TestUnavailableFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := stopped(func(r *recorder) { Unavailable(r, os.ErrNotExist) })
	if r.skip != "" || !strings.Contains(r.fatal, "hack/cassandra.sh start") {
		t.Fatalf("under CI: fatal %q skip %q", r.fatal, r.skip)
	}
	t.Setenv("CI", "")
	r = stopped(func(r *recorder) { Unavailable(r, os.ErrNotExist) })
	if r.fatal != "" || !strings.Contains(r.skip, "hack/cassandra.sh start") {
		t.Fatalf("outside CI: fatal %q skip %q", r.fatal, r.skip)
	}
}

func TestLoadFindsNoNodeInEmptyRunDir(t *testing.T) {
	t.Setenv("CAPFLEET_RUN", t.TempDir())
	t.Setenv("CI", "")
	r := stopped(func(r *recorder) { Load(r) })
	if !strings.Contains(r.skip, NotRunning) {
		t.Fatalf("skip %q", r.skip)
	}
}

func TestTLSConfigNamesTheMissingPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	run := t.TempDir()
	if err := os.MkdirAll(filepath.Join(run, "cassandra"), 0o700); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("CASSANDRA_HOSTS=127.0.0.1\nCASSANDRA_PORT=%d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := os.WriteFile(filepath.Join(run, "cassandra", "env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPFLEET_RUN", run)
	t.Setenv("CI", "true")
	var cfg cassconn.Config
	r := stopped(func(r *recorder) { cfg = Config(r) })
	if r.fatal != "" || r.skip != "" || cfg.Port != ln.Addr().(*net.TCPAddr).Port {
		t.Fatalf("plain config: %+v fatal %q skip %q", cfg, r.fatal, r.skip)
	}
	r = stopped(func(r *recorder) { TLSConfig(r) })
	if !strings.Contains(r.fatal, NoTLSPort) || !strings.Contains(r.fatal, KeyTLSPort) {
		t.Fatalf("fatal %q", r.fatal)
	}
}
