package replay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sharedPcap is a capture from shared/pcaps next to the checkout (see its MANIFEST.tsv).
func sharedPcap(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "pcaps", rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("shared/pcaps/%s not found above the working directory", rel)
		}
		dir = parent
	}
}

// tcpdumpCount is how many packets tcpdump reads from file with an optional filter.
func tcpdumpCount(t *testing.T, file string, filter ...string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", append([]string{"-r", file, "-n", "-q"}, filter...)...).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return bytes.Count(out, []byte("\n"))
}
