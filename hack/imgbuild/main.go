// Command imgbuild writes a single-layer container image as a docker-archive tarball, the format
// `ctr images import` and `docker load` read, so a node can run the project's binary without a registry.
//
//	go run ./hack/imgbuild -tag capfleet:dev -out bin/capfleet-image.tar -entrypoint /capfleet \
//	    -add bin/capfleet:/capfleet -with-libs
//
// -with-libs asks ldd which shared libraries each added file loads (libpcap, libc, the loader...) and
// puts them in the image at the same paths, so a cgo binary runs in an otherwise empty image.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// addList collects repeated -add HOST:IMAGE flags.
type addList []fileSpec

func (a *addList) String() string { return fmt.Sprint(*a) }

func (a *addList) Set(v string) error {
	host, in, ok := strings.Cut(v, ":")
	if !ok || host == "" || !strings.HasPrefix(in, "/") {
		return fmt.Errorf("want HOST_PATH:/IMAGE_PATH, got %q", v)
	}
	*a = append(*a, fileSpec{host: host, image: in, mode: 0o755})
	return nil
}

func main() {
	var adds addList
	tag := flag.String("tag", "", "image reference written into the tarball, e.g. capfleet:dev")
	out := flag.String("out", "", "docker-archive tarball to write")
	entrypoint := flag.String("entrypoint", "", "image path of the entrypoint (default: the first -add)")
	withLibs := flag.Bool("with-libs", false, "add the shared libraries the added files load, found with ldd")
	flag.Var(&adds, "add", "HOST_PATH:/IMAGE_PATH of an executable to add (repeatable)")
	flag.Parse()
	if *tag == "" || *out == "" || len(adds) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*tag, *out, *entrypoint, adds, *withLibs); err != nil {
		log.Fatalf("imgbuild: %v", err)
	}
}

func run(tag, out, entrypoint string, adds []fileSpec, withLibs bool) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	files := append([]fileSpec(nil), adds...)
	if withLibs {
		for _, a := range adds {
			libs, err := sharedLibs(a.host)
			if err != nil {
				return err
			}
			files = append(files, libs...)
		}
	}
	if entrypoint == "" {
		entrypoint = adds[0].image
	}
	img, err := buildImage(dedupe(files), []string{entrypoint})
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	d, _ := img.Digest()
	log.Printf("wrote %s: %s (%s), %d files", out, ref, d, len(dedupe(files)))
	return nil
}
