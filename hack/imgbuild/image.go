package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fileSpec is one regular file of the image: read from host, written at image with mode.
type fileSpec struct {
	host, image string
	mode        int64
}

// passwd names the user the manifests run as (runAsUser 65532, the distroless "nonroot"); naming it in
// /etc/passwd keeps tools that look the user up from failing.
const passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"

// buildImage lays the files out in one layer, with /tmp and /etc/passwd, and sets the entrypoint.
// Timestamps are fixed so the same inputs give the same digest.
func buildImage(files []fileSpec, entrypoint []string) (v1.Image, error) {
	layer, err := layerOf(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{
		Entrypoint: entrypoint,
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cf)
}

func layerOf(files []fileSpec) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parts []string
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if dirs[parts[i]] {
				continue
			}
			dirs[parts[i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parts[i][1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	write := func(name string, mode int64, data []byte) error {
		if err := mkdirs(name); err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name[1:], Mode: mode, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dirs["/tmp"] = true
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	if err := write("/etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].image < files[j].image })
	for _, f := range files {
		data, err := os.ReadFile(f.host) // follows symlinks: the image gets the library itself under the name the loader asks for
		if err != nil {
			return nil, err
		}
		if err := write(f.image, f.mode, data); err != nil {
			return nil, fmt.Errorf("add %s: %w", f.image, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// dedupe keeps the first file given for each image path.
func dedupe(files []fileSpec) []fileSpec {
	seen := map[string]bool{}
	var out []fileSpec
	for _, f := range files {
		p := path.Clean(f.image)
		if seen[p] || !strings.HasPrefix(p, "/") {
			continue
		}
		seen[p] = true
		f.image = p
		out = append(out, f)
	}
	return out
}
