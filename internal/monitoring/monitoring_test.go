package monitoring

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/replay"
	"capfleet.dev/capfleet/sensor"
)

// exported maps every metric a sensor, a processor and a replay serve to its label names, read from
// their collectors' descriptions, as Prometheus would scrape them.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	descs := make(chan *prometheus.Desc, 256)
	(&sensor.Sensor{}).Describe(descs)
	pipeline.NewCollector(&pipeline.Counters{}).Describe(descs)
	var rec recorder
	if err := (&replay.Replayer{}).Register(&rec); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec {
		c.Describe(descs)
	}
	close(descs)
	re := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range descs {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read %s", d)
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		out[m[1]] = labels
	}
	if len(out) < 20 {
		t.Fatalf("only %d metrics exported: %v", len(out), out)
	}
	return out
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder []prometheus.Collector

func (r *recorder) Register(c prometheus.Collector) error { *r = append(*r, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	*r = append(*r, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

var (
	metricRe  = regexp.MustCompile(`capfleet_[a-z_]+`)
	matcherRe = regexp.MustCompile(`(capfleet_[a-z_]+)\{([^}]*)\}`)
	labelRe   = regexp.MustCompile(`([a-z_]+)\s*=~?`)
	byRe      = regexp.MustCompile(`by \(([^)]*)\)`)
)

// checkExpr fails for a metric the workloads do not export, a label matcher on a label it does not
// have, and a grouping by a label neither the metric nor the scrape target (namespace, pod) has.
func checkExpr(t *testing.T, where, expr string, metrics map[string][]string) {
	t.Helper()
	names := metricRe.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: names no capfleet metric: %s", where, expr)
	}
	allowed := []string{"namespace", "pod"}
	for _, n := range names {
		labels, ok := metrics[n]
		if !ok {
			t.Errorf("%s: %s is not exported by any workload", where, n)
		}
		allowed = append(allowed, labels...)
	}
	for _, m := range matcherRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range labelRe.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(metrics[m[1]], l[1]) {
				t.Errorf("%s: %s has no label %q", where, m[1], l[1])
			}
		}
	}
	for _, m := range byRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); !slices.Contains(allowed, l) {
				t.Errorf("%s: groups by %q, which neither its metrics nor the scrape target carry", where, l)
			}
		}
	}
}

func TestAlertsNameExportedMetrics(t *testing.T) {
	metrics := exported(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Kind string
		Spec struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Alert, Expr, For string
					Labels           map[string]string
				}
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.For == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v lacks a name, a for or a severity", r)
			}
			checkExpr(t, r.Alert, r.Expr, metrics)
		}
	}
	if rule.Kind != "PrometheusRule" || n < 5 {
		t.Fatalf("%s with %d alerts", rule.Kind, n)
	}
}

func TestDashboardNamesExportedMetrics(t *testing.T) {
	metrics := exported(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "grafana", "capfleet-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Panels) < 6 {
		t.Fatalf("dashboard %q with %d panels", dash.UID, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, p.Title, q.Expr, metrics)
		}
	}
}

// promtool, extracted from Debian's prometheus package by hack/deps.sh, checks the alert rules and runs
// config/prometheus/prometheusrule_test.yaml on them: synthetic series that must fire each alert (and
// leave the healthy pods alone).
func TestPromtoolChecksAndTestsTheRules(t *testing.T) {
	cache := os.Getenv("CAPFLEET_CACHE") // where hack/lib.sh keeps its cache, as the scripts read it
	if cache == "" {
		cache = filepath.Join(testenv.Root(t), ".cache")
	}
	promtool := filepath.Join(cache, "debroot", "usr", "bin", "promtool")
	if _, err := os.Stat(promtool); err != nil {
		testenv.Missing(t, "promtool not found at %s: run hack/deps.sh", promtool)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	groups, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("..", "..", "config", "prometheus", "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
