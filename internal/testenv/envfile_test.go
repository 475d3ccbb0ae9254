package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadEnvFile(t *testing.T) {
	dir := WriteDir(t, map[string]string{"env": "# a comment\n\n  A=1 \nB = \"two words\"\nC='x'\nD=\nE=a=b\n"})
	vals, err := ReadEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "x", "D": "", "E": "a=b"}
	if len(vals) != len(want) {
		t.Errorf("got %q, want %q", vals, want)
	}
	for k, v := range want {
		if got, ok := vals[k]; !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	bad := filepath.Join(WriteDir(t, map[string]string{"env": "A=1\nB\n"}), "env")
	if _, err := ReadEnvFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2: not KEY=value") {
		t.Errorf("line without '=': %v", err)
	}
	if _, err := ReadEnvFile(filepath.Join(dir, "absent")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRunDir(t *testing.T) {
	t.Setenv("CAPFLEET_RUN", "/x/run")
	if d, err := RunDir("kafka"); err != nil || d != "/x/run/kafka" {
		t.Errorf("with CAPFLEET_RUN: %q, %v", d, err)
	}
	t.Setenv("CAPFLEET_RUN", "")
	if d, err := RunDir("cassandra"); err != nil || d != filepath.Join(Root(t), ".run", "cassandra") {
		t.Errorf("default: %q, %v", d, err)
	}
}

func TestCopyDir(t *testing.T) {
	src := WriteDir(t, map[string]string{"username": "u\n", "password": "p\n"})
	dst := CopyDir(t, src, map[string]string{"password": "other", "ca.crt": "pem"})
	for name, want := range map[string]string{"username": "u\n", "password": "other", "ca.crt": "pem"} {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(src, "password")); string(b) != "p\n" {
		t.Errorf("the copy changed the source: %q", b)
	}
}
