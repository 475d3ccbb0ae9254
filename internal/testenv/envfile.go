package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RunDir is where the hack/ script of a service (kafka, cassandra) keeps its state: $CAPFLEET_RUN/service,
// by default .run/service in the repository that holds the working directory.
func RunDir(service string) (string, error) {
	if run := os.Getenv("CAPFLEET_RUN"); run != "" {
		return filepath.Join(run, service), nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".run", service), nil
}

// ReadEnvFile parses the KEY=value lines of the env file a hack/ script writes: blank lines and #
// comments are skipped, keys and values trimmed of spaces and values of the quotes around them.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=value", path, n)
		}
		vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vals, nil
}
