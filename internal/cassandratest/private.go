package cassandratest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/testenv"
)

// Private is a Cassandra node of one test's own, started by hack/cassandra.sh with its own
// CAPFLEET_RUN and ports, so that crashing it disturbs no other test, and with the group commit log
// that makes an acknowledged write survive the node's crash.
type Private struct {
	run, root string
	ports     [3]string // CQL, TLS, storage
	Env       Env
}

// StartPrivate starts the node; the test's cleanup stops it.
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		testenv.Missing(t, "java is missing, hack/cassandra.sh cannot start a private node: %v", err)
	}
	root := testenv.Root(t)
	base := testenv.FreePortRun(t, 3, 19300, 19900)
	p := &Private{run: t.TempDir(), root: root}
	for i := range p.ports {
		p.ports[i] = strconv.Itoa(base + i)
	}
	if out, err := p.script("start"); err != nil {
		testenv.Missing(t, "hack/cassandra.sh start (private, ports %v): %v\n%s", p.ports, err, out)
	}
	t.Cleanup(func() {
		if out, err := p.script("stop"); err != nil {
			t.Errorf("hack/cassandra.sh stop (private): %v\n%s", err, out)
		}
	})
	env, err := ReadEnv(filepath.Join(p.run, "cassandra"))
	if err != nil {
		t.Fatal(err)
	}
	p.Env = env
	return p
}

// Config is the node's clear-text port, logged in as the test role.
func (p *Private) Config() cassconn.Config { return p.Env.Plain() }

func (p *Private) script(cmd string) (string, error) {
	c := exec.Command("bash", "hack/cassandra.sh", cmd)
	c.Dir = p.root
	// Group commit: a crashed node keeps every write it acknowledged (see hack/cassandra.sh).
	c.Env = append(os.Environ(), "CAPFLEET_RUN="+p.run, "CASSANDRA_PORT="+p.ports[0],
		"CASSANDRA_TLS_PORT="+p.ports[1], "CASSANDRA_STORAGE_PORT="+p.ports[2], "CASSANDRA_COMMITLOG_SYNC=group")
	out, err := c.CombinedOutput()
	return string(out), err
}

func (p *Private) pidFile() string { return filepath.Join(p.run, "cassandra.pid") }

// Crash ends the node with SIGKILL, as an OOM kill would, and returns the command line that brings the
// same node (config, data, ports) back.
func (p *Private) Crash(t testing.TB) []string {
	t.Helper()
	return testenv.CrashService(t, p.pidFile(), "CassandraDaemon")
}

// Restart runs the node again on its data (the commit log replays what it had acknowledged) and
// returns once it answers CQL.
func (p *Private) Restart(t testing.TB, argv []string) {
	t.Helper()
	testenv.RestartService(t, argv, p.root, p.pidFile())
	cfg := p.Config()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		s, err := cfg.Session()
		if err == nil {
			s.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node does not answer 3 minutes later: %v", err)
		}
	}
}
