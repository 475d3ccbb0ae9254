// Package testenv finds what tests need from the project's own scripts: the repository root, the envtest
// control plane that hack/envtest.sh installs, and the shared captures.
package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// KubeVersion is the Kubernetes release hack/envtest.sh builds by default.
const KubeVersion = "v1.34.4"

// RepoRoot is the repository root: the nearest folder above the working directory (a package's folder
// under go test) holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Root is RepoRoot for a test, which it ends when there is none.
func Root(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Missing ends a test that lacks a service the project's scripts provide: under CI it fails, since CI must
// run everything; on a developer's machine it skips with the command that would provide it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if UnderCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// UnderCI says whether the tests run in CI (CI set, as CI services and .ci/run set it), where a
// missing service or capture is a failure, not a reason to skip. The one place that decides it.
func UnderCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// KubebuilderAssets returns the folder with etcd, kube-apiserver and kubectl: $KUBEBUILDER_ASSETS, or the
// cache hack/envtest.sh fills.
func KubebuilderAssets(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	d := filepath.Join(Root(t), ".cache", "kube", KubeVersion)
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(d, bin)); err != nil {
			Missing(t, "the envtest control plane is not installed (%s missing): run hack/envtest.sh", bin)
		}
	}
	return d
}

// Pcaps is the folder of shared real captures, ../shared/pcaps beside the repository.
func Pcaps(t testing.TB) string {
	t.Helper()
	d := filepath.Join(filepath.Dir(Root(t)), "shared", "pcaps")
	if _, err := os.Stat(d); err != nil {
		Missing(t, "shared captures not found at %s", d)
	}
	return d
}
