package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
)

// script runs hack/kafka.sh with a private run dir and port block, so these
// tests never touch the broker other tests share.
type script struct {
	t    *testing.T
	path string
	run  string
	port int
}

func newScript(t *testing.T) script {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return script{t: t, path: filepath.Join(root, "hack", "kafka.sh"), run: t.TempDir(), port: freePortBlock(t, 4)}
}

func (s script) do(arg string) (string, error) {
	s.t.Helper()
	cmd := exec.Command("bash", s.path, arg)
	cmd.Env = append(os.Environ(), "CAPFLEET_RUN="+s.run, "KAFKA_PORT="+strconv.Itoa(s.port))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s script) pid() int {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.run, "kafka.pid"))
	if err != nil {
		s.t.Fatal(err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// freePortBlock finds n consecutive free loopback ports (the script derives
// all its listeners from the first).
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	for base := 29100; base < 29900; base += 10 {
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free block of loopback ports in 29100-29900")
	return 0
}

func needJava(t *testing.T) {
	for _, tool := range []string{"java", "mvn", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("hack/kafka.sh needs %s: %v", tool, err)
			testenv.Missing(t, "%s", msg)
		}
	}
}

func TestScriptLifecycle(t *testing.T) {
	needJava(t)
	s := newScript(t)
	t.Cleanup(func() {
		if out, err := s.do("stop"); err != nil {
			t.Errorf("cleanup stop: %v\n%s", err, out)
		}
	})

	if out, err := s.do("start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.run, "kafka.log"))
		t.Fatalf("start: %v\n%s\nkafka.log:\n%s", err, out, lastLines(string(log), 40))
	}
	env, err := ReadEnv(filepath.Join(s.run, "kafka", "env"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", s.port); env.Brokers[0] != want {
		t.Errorf("env brokers %v, want %s", env.Brokers, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitReady(ctx, env.Plain(), env.Secure(), env.MTLS()); err != nil {
		t.Fatalf("broker from start does not answer: %v", err)
	}
	pid := s.pid()

	out, err := s.do("start")
	if err != nil || !strings.Contains(out, "already running") || s.pid() != pid {
		t.Errorf("second start: err=%v pid %d->%d\n%s", err, pid, s.pid(), out)
	}
	if out, err := s.do("status"); err != nil {
		t.Errorf("status while running: %v\n%s", err, out)
	}

	if out, err := s.do("stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("broker pid %d still there after stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(filepath.Join(s.run, "kafka")); !os.IsNotExist(err) {
		t.Errorf("stop left %s/kafka behind (%v)", s.run, err)
	}
	if out, err := s.do("status"); err == nil {
		t.Errorf("status after stop exited 0:\n%s", out)
	}
}

// A PID file whose process is not our broker (PIDs get reused) must not get
// that process ended by stop, nor be taken for a running Kafka.
func TestScriptIgnoresAStalePIDFile(t *testing.T) {
	s := newScript(t)
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	pidFile := filepath.Join(s.run, "kafka.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.do("status"); err == nil {
		t.Errorf("status took an unrelated process for Kafka:\n%s", out)
	}
	if out, err := s.do("stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("stop ended an unrelated process: %v", err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("stale PID file still there (%v)", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
