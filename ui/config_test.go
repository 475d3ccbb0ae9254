package ui

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/internal/testenv"
)

// The installs run `capfleet ui` with the arguments their Deployment gives; every one must be a flag the
// command knows, or the pod crash-loops on a cluster.
func TestInstalledArgumentsAreFlagsUIKnows(t *testing.T) {
	root := testenv.Root(t)
	kubectl := filepath.Join(testenv.KubebuilderAssets(t), "kubectl")
	for _, dir := range []string{"default", "local"} {
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "config", dir)).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize config/%s: %v", dir, err)
		}
		found := false
		for _, doc := range bytes.Split(out, []byte("\n---\n")) {
			if !bytes.Contains(doc, []byte("kind: Deployment")) || !bytes.Contains(doc, []byte("name: capfleet-ui\n")) {
				continue
			}
			var d appsv1.Deployment
			if err := yaml.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			args := d.Spec.Template.Spec.Containers[0].Args
			if len(args) == 0 || args[0] != "ui" {
				t.Fatalf("config/%s: capfleet-ui runs %v, not ui", dir, args)
			}
			cmd := NewCommand()
			if err := cmd.ParseFlags(args[1:]); err != nil || len(cmd.Flags().Args()) != 0 {
				t.Errorf("config/%s: ui rejects %v: %v %v", dir, args[1:], err, cmd.Flags().Args())
			}
			if d.Spec.Template.Spec.ServiceAccountName != "capfleet-ui" || !strings.Contains(string(doc), "readOnlyRootFilesystem: true") {
				t.Errorf("config/%s: the UI runs as %q or with a writable root", dir, d.Spec.Template.Spec.ServiceAccountName)
			}
			found = true
		}
		if !found {
			t.Errorf("config/%s has no capfleet-ui Deployment", dir)
		}
	}
}
