package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CrashService ends the service whose PID a hack/ script keeps in pidFile with SIGKILL, as an OOM kill
// or a node failure would, and returns the command line that brings the same service (config, data,
// ports) back. marker must appear in its command line: a stale PID file never kills another process.
func CrashService(t testing.TB, pidFile, marker string) []string {
	t.Helper()
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(marker)) {
		t.Fatalf("pid %d is not our %s: %v", pid, marker, err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still there 30 s after SIGKILL", pid)
		}
	}
	return argv
}

// RestartService runs argv (from CrashService) again in dir, its output in a log beside pidFile, and
// writes its PID there, so that the script's stop ends the new process too.
func RestartService(t testing.TB, argv []string, dir, pidFile string) {
	t.Helper()
	logf, err := os.Create(strings.TrimSuffix(pidFile, filepath.Ext(pidFile)) + "-restarted.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Wait() }() // reaped whenever the script's stop ends it
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
