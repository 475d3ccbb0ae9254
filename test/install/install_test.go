// Package install tests the three ways to install capfleet against each other and against a real API
// server: the Helm chart (charts/capfleet), kustomize (config/) and dist/install.yaml. The chart must
// render the CRDs and RBAC rules config/ holds and an operator that runs with the same arguments, and
// every object of every install must pass the API server's own validation (server-side dry run).
package install

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"capfleet.dev/capfleet/internal/testenv"
)

const (
	chart     = "charts/capfleet"
	namespace = "capfleet-system"
	// The Prometheus Operator's CRDs, from its Go module: the chart's ServiceMonitor, PodMonitor and
	// PrometheusRule are checked against their schemas.
	promOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// helm builds (once, cached) and returns the helm binary hack/helm.sh pins.
func helm(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(testenv.Root(t), "hack", "helm.sh")).Output()
	if err != nil {
		testenv.Missing(t, "helm could not be built by hack/helm.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = testenv.Root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// objects splits a multi-document YAML stream into objects keyed "Kind/name".
func objects(t *testing.T, y []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding YAML: %v", err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		out[u.GetKind()+"/"+u.GetName()] = u
	}
}

func kubectl(t *testing.T) string {
	return filepath.Join(testenv.KubebuilderAssets(t), "kubectl")
}

func helmTemplate(t *testing.T, args ...string) []byte {
	return run(t, helm(t), append([]string{"template", "capfleet", chart, "--namespace", namespace, "--include-crds"}, args...)...)
}

func TestChartLints(t *testing.T) {
	h := helm(t)
	for name, args := range map[string][]string{
		"defaults":   nil,
		"local node": {"-f", chart + "/ci/local-values.yaml"},
		"everything on": {"--set", "serviceMonitor.enabled=true,podMonitor.enabled=true,prometheusRule.enabled=true," +
			"grafanaDashboard.enabled=true,kafka.tls=true,kafka.secret=kafka-creds,kafka.operatorSecret=kafka-operator," +
			"cassandra.tls=true,cassandra.secret=cass-creds,cassandra.port=9142,ui.tlsSecret=capfleet-ui-tls"},
	} {
		t.Run(name, func(t *testing.T) {
			out := run(t, h, append([]string{"lint", "--strict", chart}, args...)...)
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestChartRendersWhatConfigDoes holds the chart to config/: the same CRDs byte for byte (as objects),
// the same RBAC rules, and an operator Deployment with the same arguments, environment, probes, ports,
// resources and security settings; by default as config/default, with ci/local-values.yaml as
// config/local.
func TestChartRendersWhatConfigDoes(t *testing.T) {
	for _, c := range []struct {
		name, kustomization string
		values              []string
	}{
		{"default", "config/default", nil},
		{"local node", "config/local", []string{"-f", chart + "/ci/local-values.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := objects(t, helmTemplate(t, c.values...))
			want := objects(t, run(t, kubectl(t), "kustomize", c.kustomization))
			crds := 0
			for k, w := range want {
				if !strings.HasPrefix(k, "CustomResourceDefinition/") {
					continue
				}
				crds++
				g, ok := got[k]
				if !ok {
					t.Errorf("the chart has no %s", k)
				} else if !reflect.DeepEqual(g.Object, w.Object) {
					t.Errorf("%s differs between the chart and %s", k, c.kustomization)
				}
			}
			if crds == 0 {
				t.Fatalf("%s renders no CRDs", c.kustomization)
			}
			sameField(t, got, want, "ClusterRole/capfleet-manager-role", "rules")
			sameField(t, got, want, "ClusterRoleBinding/capfleet-manager-rolebinding", "subjects")
			sameField(t, got, want, "ClusterRoleBinding/capfleet-manager-rolebinding", "roleRef")
			if _, ok := got["Role/capfleet-leader-election-role"]; ok {
				sameField(t, got, want, "Role/capfleet-leader-election-role", "rules")
			} else if hasArg(want["Deployment/capfleet-manager"], "--leader-elect") {
				t.Errorf("the chart elects a leader without a Role for its leases")
			}
			sameField(t, got, want, "ClusterRole/capfleet-ui-role", "rules")
			sameField(t, got, want, "ClusterRoleBinding/capfleet-ui-rolebinding", "subjects")
			sameField(t, got, want, "Service/capfleet-ui", "spec")
			for _, dep := range []string{"Deployment/capfleet-manager", "Deployment/capfleet-ui"} {
				sameDeployment(t, got, want, dep, c.kustomization)
			}
		})
	}
}

// TestChartCarriesTheMonitoring checks the optional objects: the alert rules and the dashboard are
// config/'s, unchanged.
func TestChartCarriesTheMonitoring(t *testing.T) {
	got := objects(t, helmTemplate(t, "--set", "prometheusRule.enabled=true,grafanaDashboard.enabled=true,serviceMonitor.enabled=true,podMonitor.enabled=true"))
	rules := objects(t, run(t, "cat", "config/prometheus/prometheusrule.yaml"))
	sameField(t, got, rules, "PrometheusRule/capfleet", "spec")
	dash, err := os.ReadFile(filepath.Join(testenv.Root(t), "config", "grafana", "capfleet-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	cm := got["ConfigMap/capfleet-grafana-dashboard"]
	if cm == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	if v, _, _ := unstructured.NestedString(cm.Object, "data", "capfleet-dashboard.json"); strings.TrimSpace(v) != strings.TrimSpace(string(dash)) {
		t.Errorf("the dashboard ConfigMap does not hold config/grafana/capfleet-dashboard.json")
	}
	for _, k := range []string{"ServiceMonitor/capfleet-manager", "PodMonitor/capfleet-workloads", "Service/capfleet-manager-metrics"} {
		if got[k] == nil {
			t.Errorf("no %s with monitoring on", k)
		}
	}
}

// TestChartServesTheUIOverTLSFromASecret: with ui.tlsSecret the UI is given the Secret's pair, its
// probes and Service speak HTTPS, and without the Secret it does not start (no fallback to HTTP).
func TestChartServesTheUIOverTLSFromASecret(t *testing.T) {
	got := objects(t, helmTemplate(t, "--set", "ui.tlsSecret=capfleet-ui-tls"))
	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got["Deployment/capfleet-ui"].Object, &dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	files := map[string]string{}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok && (k == "--tls-cert-file" || k == "--tls-key-file") {
			files[k] = v
		}
	}
	if len(files) != 2 {
		t.Fatalf("UI args %v: want --tls-cert-file and --tls-key-file", c.Args)
	}
	for flag, file := range files {
		var vol string
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, m.MountPath+"/") {
				vol = m.Name
			}
		}
		var secret *corev1.SecretVolumeSource
		for _, v := range pod.Volumes {
			if v.Name == vol {
				secret = v.Secret
			}
		}
		if secret == nil || secret.SecretName != "capfleet-ui-tls" || (secret.Optional != nil && *secret.Optional) {
			t.Errorf("%s=%s is not in a mounted, required Secret capfleet-ui-tls (volume %q: %+v)", flag, file, vol, secret)
		}
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s probe %+v: want HTTPS", name, p)
		}
	}
	var svc corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got["Service/capfleet-ui"].Object, &svc); err != nil {
		t.Fatal(err)
	}
	if len(c.Ports) != 1 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name || c.Ports[0].Name != "https" {
		t.Errorf("Service ports %+v to container ports %+v: want one, to the container's https port", svc.Spec.Ports, c.Ports)
	}
}

// TestInstallsPassServerSideDryRun sends every object of every install to a real API server as a
// server-side dry run: schema, CEL rules, defaults and admission all apply, nothing is stored.
func TestInstallsPassServerSideDryRun(t *testing.T) {
	k := startAPIServer(t)
	// A dry run creates nothing, so what the objects stand on must exist: the namespace, and the
	// Prometheus Operator's kinds.
	k(nil, "create", "namespace", namespace)
	modDir := moduleDir(t, promOperator)
	for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		k(nil, "apply", "--server-side", "-f", filepath.Join(modDir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml"))
	}
	k(nil, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

	dist, err := os.ReadFile(filepath.Join(testenv.Root(t), "dist", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, y := range map[string][]byte{
		"dist/install.yaml": dist,
		"chart, defaults":   helmTemplate(t),
		"chart, local node": helmTemplate(t, "-f", chart+"/ci/local-values.yaml"),
		"chart, monitoring and secrets": helmTemplate(t, "--set", "serviceMonitor.enabled=true,podMonitor.enabled=true,"+
			"prometheusRule.enabled=true,grafanaDashboard.enabled=true,kafka.operatorSecret=kafka-operator,kafka.tls=true,ui.tlsSecret=capfleet-ui-tls"),
	} {
		t.Run(name, func(t *testing.T) {
			out := k(y, "apply", "--server-side", "--dry-run=server", "--field-manager=capfleet-install-test", "-f", "-")
			n := strings.Count(string(out), "(server dry run)")
			if want := len(objects(t, y)); n != want {
				t.Errorf("%d of %d objects accepted in the dry run:\n%s", n, want, out)
			}
		})
	}
}

// sameDeployment compares what makes two Deployments run the same pods: the pod's account, security,
// network and strategy, and the container's image, arguments (in any order), environment, ports, probes,
// resources, security and mounts.
func sameDeployment(t *testing.T, got, want map[string]*unstructured.Unstructured, dep, kustomization string) {
	t.Helper()
	for _, f := range [][]string{
		{"spec", "template", "spec", "serviceAccountName"},
		{"spec", "template", "spec", "securityContext"},
		{"spec", "template", "spec", "hostNetwork"},
		{"spec", "template", "spec", "dnsPolicy"},
		{"spec", "template", "spec", "volumes"},
		{"spec", "strategy", "type"},
		{"spec", "selector"},
	} {
		sameField(t, got, want, dep, f...)
	}
	if got[dep] == nil || want[dep] == nil {
		return
	}
	gc, wc := container(t, got[dep]), container(t, want[dep])
	// The order of environment variables matters only to $(VAR) references, which neither uses.
	sortEnv(gc)
	sortEnv(wc)
	for _, f := range []string{"image", "imagePullPolicy", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext", "volumeMounts"} {
		if !reflect.DeepEqual(gc[f], wc[f]) {
			t.Errorf("%s container's %s: chart %v, %s %v", dep, f, gc[f], kustomization, wc[f])
		}
	}
	ga, wa := strings.Fields(argsOf(gc)), strings.Fields(argsOf(wc))
	sort.Strings(ga)
	sort.Strings(wa)
	if !reflect.DeepEqual(ga, wa) {
		t.Errorf("%s arguments:\nchart %v\n%s %v", dep, ga, kustomization, wa)
	}
}

func sameField(t *testing.T, got, want map[string]*unstructured.Unstructured, key string, path ...string) {
	t.Helper()
	g, w := got[key], want[key]
	if g == nil || w == nil {
		t.Errorf("%s: in the chart %v, in config %v", key, g != nil, w != nil)
		return
	}
	gv, _, _ := unstructured.NestedFieldNoCopy(g.Object, path...)
	wv, _, _ := unstructured.NestedFieldNoCopy(w.Object, path...)
	if !reflect.DeepEqual(gv, wv) {
		t.Errorf("%s %s: chart %v, config %v", key, strings.Join(path, "."), gv, wv)
	}
}

func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	if d == nil {
		t.Fatal("no operator Deployment")
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%d containers in the operator Deployment", len(cs))
	}
	return cs[0].(map[string]any)
}

func sortEnv(c map[string]any) {
	env, _ := c["env"].([]any)
	sort.Slice(env, func(i, j int) bool {
		return env[i].(map[string]any)["name"].(string) < env[j].(map[string]any)["name"].(string)
	})
}

func argsOf(c map[string]any) string {
	var s []string
	for _, a := range c["args"].([]any) {
		s = append(s, a.(string))
	}
	return strings.Join(s, " ")
}

func hasArg(d *unstructured.Unstructured, arg string) bool {
	if d == nil {
		return false
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		for _, a := range c.(map[string]any)["args"].([]any) {
			if a == arg {
				return true
			}
		}
	}
	return false
}

// moduleDir downloads a Go module (to the module cache) for the CRDs it ships, and returns its folder.
// It runs outside this module: a module that needs a newer Go than ours still downloads there.
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		testenv.Missing(t, "the Go module %s, whose CRDs the test applies, cannot be downloaded: %v\n%s", mod, err, out)
	}
	return jsonField(t, out, "Dir")
}

func jsonField(t *testing.T, j []byte, field string) string {
	t.Helper()
	var m map[string]any
	if err := utilyaml.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[field].(string)
	if s == "" {
		t.Fatalf("no %s in %s", field, j)
	}
	return s
}

// TestFluxExampleIsValid applies the objects of docs/flux.md as a server-side dry run against Flux's
// own CRDs (from its Go modules), and checks each Kustomization waits for what it applies.
func TestFluxExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.Root(t), "docs", "flux.md"))
	if err != nil {
		t.Fatal(err)
	}
	var y []byte
	for i, block := range strings.Split(string(doc), "```") {
		if i%2 == 1 && strings.HasPrefix(block, "yaml\n") {
			y = append(y, strings.TrimPrefix(block, "yaml\n")+"\n---\n"...)
		}
	}
	objs := objects(t, y)
	waits := 0
	for k, o := range objs {
		if strings.HasPrefix(k, "Kustomization/") {
			if w, _, _ := unstructured.NestedBool(o.Object, "spec", "wait"); !w {
				t.Errorf("%s does not wait for its objects", k)
			}
			waits++
			if p, _, _ := unstructured.NestedString(o.Object, "spec", "path"); p == "./config/default" {
				if _, err := os.Stat(filepath.Join(testenv.Root(t), p, "kustomization.yaml")); err != nil {
					t.Errorf("%s: %v", k, err)
				}
			}
		}
	}
	if waits != 2 {
		t.Fatalf("docs/flux.md has %d Kustomizations, want the operator's and the capture resources'", waits)
	}
	k := startAPIServer(t)
	k(nil, "create", "namespace", "flux-system")
	for _, m := range fluxCRDs {
		k(nil, "apply", "--server-side", "-f", filepath.Join(moduleDir(t, m.module), "config", "crd", "bases", m.file))
	}
	k(nil, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
	out := k(y, "apply", "--server-side", "--dry-run=server", "-f", "-")
	if n := strings.Count(string(out), "(server dry run)"); n != len(objs) {
		t.Errorf("%d of %d objects accepted:\n%s", n, len(objs), out)
	}
}

var fluxCRDs = []struct{ module, file string }{
	{"github.com/fluxcd/source-controller@v1.9.6", "source.toolkit.fluxcd.io_gitrepositories.yaml"},
	{"github.com/fluxcd/kustomize-controller@v1.9.6", "kustomize.toolkit.fluxcd.io_kustomizations.yaml"},
}

// startAPIServer starts an API server (etcd and kube-apiserver from KUBEBUILDER_ASSETS) and returns a
// kubectl bound to it as a cluster admin: k(stdin, args...) fails the test on an error.
func startAPIServer(t *testing.T) func(stdin []byte, args ...string) []byte {
	t.Helper()
	// A loaded CI machine can take longer than envtest's 20 s default to bring up etcd and the API server.
	env := &envtest.Environment{BinaryAssetsDirectory: testenv.KubebuilderAssets(t),
		ControlPlaneStartTimeout: 2 * time.Minute}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(kubectl(t), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Dir = testenv.Root(t)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}
