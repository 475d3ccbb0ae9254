// Package secretdir reads a mounted Kubernetes Secret: a folder of small files, one per key. Values come
// only from such files, never from flags or the environment, so they stay out of arguments and logs.
package secretdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir holds the files of a secret folder that were asked for and exist.
type Dir struct {
	dir   string
	files map[string][]byte
}

// Read loads the named files of dir; a missing file is simply absent. An empty dir reads as no secret.
// what names the folder in errors (for example "kafka: --kafka-secret-dir").
func Read(dir, what string, names ...string) (Dir, error) {
	s := Dir{dir: dir, files: map[string][]byte{}}
	if dir == "" {
		return s, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return s, fmt.Errorf("%s: %w", what, err)
	}
	if !st.IsDir() {
		return s, fmt.Errorf("%s %s is not a directory", what, dir)
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("%s: %w", what, err)
		}
		s.files[name] = b
	}
	return s, nil
}

// Has says whether the file exists.
func (s Dir) Has(name string) bool { _, ok := s.files[name]; return ok }

// Path is where the file is, for messages that name it (never its content).
func (s Dir) Path(name string) string { return filepath.Join(s.dir, name) }

// Bytes is the file's content.
func (s Dir) Bytes(name string) []byte { return s.files[name] }

// Text returns a file's value without the trailing newline that `echo >file` and many secret generators
// add; inner spaces are kept as they may be meant.
func (s Dir) Text(name string) string { return strings.TrimRight(string(s.files[name]), "\r\n") }
