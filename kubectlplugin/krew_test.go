package kubectlplugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/internal/testenv"
)

// krew (built from its Go module) installs the plugin from the manifest `make plugin` renders and the
// archive it builds, checking the archive's SHA-256 against the manifest; kubectl then finds it on PATH
// and `kubectl capfleet status` answers from a real API server.
func TestKrewInstallsThePlugin(t *testing.T) {
	root := testenv.Root(t)
	script := filepath.Join(root, "hack", "krew.sh")
	out, err := exec.Command("bash", script, "tools").Output()
	if err != nil {
		testenv.Missing(t, "krew could not be built by hack/krew.sh tools: %v", err)
	}
	krew := strings.TrimSpace(string(out))
	dist := t.TempDir()
	build := exec.Command("bash", script, "plugin")
	build.Env = append(os.Environ(), "DIST="+dist, "VERSION=v0.0.1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("hack/krew.sh plugin: %v\n%s", err, out)
	}
	manifest := filepath.Join(dist, "krew", "capfleet.yaml")
	archive := filepath.Join(dist, "kubectl-capfleet_linux_amd64.tar.gz")

	krewRoot := t.TempDir()
	install := func(archive string) ([]byte, error) {
		cmd := exec.Command(krew, "install", "--manifest="+manifest, "--archive="+archive)
		cmd.Env = append(os.Environ(), "KREW_ROOT="+krewRoot, "HOME="+t.TempDir())
		return cmd.CombinedOutput()
	}
	// An archive other than the one the manifest was made for is refused.
	other := filepath.Join(dist, "other.tar.gz")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := install(other); err == nil {
		t.Fatalf("krew installed an archive whose sum the manifest does not name:\n%s", out)
	}
	if out, err := install(archive); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}

	c, kubeconfig := apiServer(t)
	ns := controllerstest.Namespace(t, c)
	create(t, c, &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
		Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}}})
	kubectl := exec.CommandContext(context.Background(), filepath.Join(testenv.KubebuilderAssets(t), "kubectl"),
		"capfleet", "status", "-n", ns)
	// kubectl hands a plugin its own arguments only; the kubeconfig reaches it as users' does, by $KUBECONFIG.
	kubectl.Env = append(os.Environ(), "PATH="+filepath.Join(krewRoot, "bin")+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	got, err := kubectl.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl capfleet status: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), "CaptureSensor "+ns+"/edge") {
		t.Errorf("kubectl capfleet status does not list the sensor:\n%s", got)
	}
}
