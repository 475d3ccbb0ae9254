package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageCarriesBinaryAndItsLibraries writes an image of /bin/true with the libraries ldd names, reads
// the tarball back as `ctr images import` would, and checks the entrypoint and every file are there.
func TestImageCarriesBinaryAndItsLibraries(t *testing.T) {
	if _, err := os.Stat("/bin/true"); err != nil {
		t.Skip("no /bin/true")
	}
	out := filepath.Join(t.TempDir(), "img.tar")
	adds := []fileSpec{{host: "/bin/true", image: "/true", mode: 0o755}}
	if err := run("capfleet.local/test:1", out, "", adds, true); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("capfleet.local/test:1")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/true"}) || cf.OS != "linux" {
		t.Errorf("entrypoint %v os %s", cf.Config.Entrypoint, cf.OS)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = h.Mode
	}
	libs, err := sharedLibs("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) < 2 {
		t.Fatalf("ldd found %d libraries for /bin/true, want libc and the loader", len(libs))
	}
	for _, want := range append([]string{"/true", "/etc/passwd", "/tmp"}, paths(libs)...) {
		if _, ok := files[want]; !ok {
			t.Errorf("image lacks %s; has %v", want, files)
		}
	}
	if files["/tmp"] != 0o1777 {
		t.Errorf("/tmp mode %o", files["/tmp"])
	}
}

func paths(fs []fileSpec) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.image)
	}
	return out
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibpcap.so.0.8 => /lib/x86_64-linux-gnu/libpcap.so.0.8 (0x00007f61)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f62)\n"
	libs, err := parseLdd([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libpcap.so.0.8", "/lib64/ld-linux-x86-64.so.2"}
	if got := paths(libs); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseLdd([]byte("\tlibmissing.so.1 => not found\n")); err == nil || !strings.Contains(err.Error(), "libmissing.so.1") {
		t.Errorf("missing library: err %v, want one naming it", err)
	}
}

func TestAddFlag(t *testing.T) {
	var a addList
	for _, bad := range []string{"bin/capfleet", "bin/capfleet:capfleet", ":/capfleet"} {
		if err := a.Set(bad); err == nil {
			t.Errorf("-add %q accepted", bad)
		}
	}
	if err := a.Set("bin/capfleet:/capfleet"); err != nil || a[0].host != "bin/capfleet" || a[0].image != "/capfleet" {
		t.Errorf("got %+v, %v", a, err)
	}
}
