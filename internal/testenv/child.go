package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/spf13/cobra"
)

// childEnv carries the arguments of a command the test binary runs as a child (StartChild), so that a
// test can kill a real process with SIGKILL.
const childEnv = "CAPFLEET_TEST_CHILD_ARGS"

// RunChild, called first in TestMain, runs newCmd with the arguments StartChild gave and exits when
// this binary was started as such a child; otherwise it returns.
func RunChild(newCmd func() *cobra.Command) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cmd := newCmd()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
		os.Exit(1)
	}
	os.Exit(0)
}

// StartChild runs the test binary again as a child that runs args (see RunChild), its output in the
// returned buffer; the test's cleanup kills it if the test did not end it.
func StartChild(t testing.TB, args []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	enc, _ := json.Marshal(args)
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), childEnv+"="+string(enc))
	var log bytes.Buffer
	c.Stdout, c.Stderr = &log, &log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	return c, &log
}
