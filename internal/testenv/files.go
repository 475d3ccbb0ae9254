package testenv

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// WriteDir makes a folder holding exactly the given files (name to content, written as given, 0600): a
// secret dir as kafkaconn and cassconn read it (a mounted Kubernetes Secret), or a hack/ script's env file.
func WriteDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// CopyDir is a WriteDir with the files of the flat folder src (a hack/ script's client secret, say), the
// given ones replaced or added.
func CopyDir(t testing.TB, src string, replace map[string]string) string {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	maps.Copy(files, replace)
	return WriteDir(t, files)
}
