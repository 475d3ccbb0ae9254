package argocdhealth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func dir(t *testing.T) string {
	t.Helper()
	return filepath.Join("..", "..", "config", "argocd", "resource_customizations", "capture.capfleet.dev", "_")
}

// The cases of health_test.yaml, in Argo CD's own format, give what the script returns.
func TestHealthTestYAML(t *testing.T) {
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir(t), "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Tests []struct {
			HealthStatus Status `json:"healthStatus"`
			InputPath    string `json:"inputPath"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Tests) < 6 {
		t.Fatalf("%d cases", len(cases.Tests))
	}
	seen := map[string]bool{}
	for _, c := range cases.Tests {
		in, err := os.ReadFile(filepath.Join(dir(t), c.InputPath))
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(in, &obj); err != nil {
			t.Fatal(err)
		}
		got, err := Eval(script, obj)
		if err != nil {
			t.Fatalf("%s: %v", c.InputPath, err)
		}
		if got != c.HealthStatus {
			t.Errorf("%s: %+v, want %+v", c.InputPath, got, c.HealthStatus)
		}
		seen[got.Status] = true
	}
	for _, s := range []string{"Healthy", "Progressing", "Degraded"} {
		if !seen[s] {
			t.Errorf("no case ends %s", s)
		}
	}
}

// The argocd-cm snippet in docs/argocd.md carries the script as it is.
func TestArgoCDConfigMapSnippetIsCurrent(t *testing.T) {
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "argocd.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := Snippet(script); !strings.Contains(string(doc), want) {
		t.Errorf("docs/argocd.md does not hold the current argocd-cm snippet; it should contain:\n%s", want)
	}
}
