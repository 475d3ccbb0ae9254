// Package integration runs the operator against a real API server (envtest's kube-apiserver and etcd) with
// what envtest lacks made real: the operator as its own process, killed and restarted, and the workloads
// (sensor, replayer, processor) its resources run, beating through a real broker.
package integration

import (
	"bytes"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/manager"
)

func TestMain(m *testing.M) {
	testenv.RunChild(manager.NewCommand) // a child that a test started: the operator with its arguments
	code := m.Run()
	controllerstest.Stop()
	os.Exit(code)
}

// The operator is killed with SIGKILL and a new process takes over the same cluster: it changes no child
// (DaemonSet, Deployment, Job keep their resourceVersion) and rewrites no status, since nothing changed.
func TestOperatorKilledAndRestartedChangesNothing(t *testing.T) {
	root := testenv.Root(t)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.KubebuilderAssets(t),
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns = "restart"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// The ReplayJob sample reads a capture from this ConfigMap.
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sample-captures", Namespace: ns},
		BinaryData: map[string][]byte{"http.pcap": samplePcap(t)}}); err != nil {
		t.Fatal(err)
	}
	var crs []*unstructured.Unstructured
	for _, f := range []string{"capture_v1alpha1_capturesensor.yaml", "capture_v1alpha1_packetpipeline.yaml", "capture_v1alpha1_replayjob.yaml"} {
		u := readSample(t, filepath.Join(root, "config", "samples", f))
		u.SetNamespace(ns)
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
		crs = append(crs, u)
	}

	metrics := testenv.FreeAddr(t)
	args := []string{"--kubeconfig", kcPath, "--metrics-bind-address", metrics, "--health-probe-bind-address", "0",
		"--manage-topics=false", "--stats-topic", "", "--image", "capfleet:test"}
	first, firstLog := testenv.StartChild(t, args)
	// Settled: the children exist and nothing (children or status) changed for a few seconds.
	before := settled(t, c, ns, crs, firstLog)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	_, secondLog := testenv.StartChild(t, args)
	// The new process has reconciled every resource at least once...
	pipelinetest.Eventually(t, 2*time.Minute, "the new operator reconciled every kind", func() (bool, string) {
		page := httpGet("http://" + metrics + "/metrics")
		for _, kind := range []string{"capturesensor", "packetpipeline", "replayjob"} {
			if !hasReconciled(page, kind) {
				return false, kind + " not reconciled yet\n" + tail(secondLog.String(), 10)
			}
		}
		return true, ""
	})
	// ...and a little more, for any write it would make after its first pass.
	time.Sleep(3 * time.Second)
	after := versions(t, c, ns, crs)
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s changed across the operator restart: resourceVersion %s -> %s", name, v, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared after the operator restart", name)
		}
	}
	t.Logf("%d objects unchanged across a SIGKILL and a new operator process", len(before))
}

// settled waits until the children exist and no object changes for 3 s, and returns the versions.
func settled(t *testing.T, c client.Client, ns string, crs []*unstructured.Unstructured, log *bytes.Buffer) map[string]string {
	t.Helper()
	var last map[string]string
	stableSince := time.Now()
	pipelinetest.Eventually(t, 2*time.Minute, "children created and every object unchanged for 3 s", func() (bool, string) {
		v := versions(t, c, ns, crs)
		kinds := map[string]bool{}
		for name := range v {
			kinds[strings.SplitN(name, "/", 2)[0]] = true
		}
		if !kinds["DaemonSet"] || !kinds["Deployment"] || !kinds["Job"] {
			return false, fmt.Sprintf("children so far: %v\n%s", v, tail(log.String(), 10))
		}
		if fmt.Sprint(v) != fmt.Sprint(last) {
			last, stableSince = v, time.Now()
			return false, "still changing"
		}
		return time.Since(stableSince) >= 3*time.Second, "stable for " + time.Since(stableSince).String()
	})
	return last
}

// versions maps "Kind/name" to the resourceVersion of the resources and of every child they own.
func versions(t *testing.T, c client.Client, ns string, crs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, cr := range crs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(cr.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(cr), u); err != nil {
			t.Fatal(err)
		}
		out[u.GetKind()+"/"+u.GetName()] = u.GetResourceVersion()
	}
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DaemonSetList"},
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
		{Group: "batch", Version: "v1", Kind: "JobList"},
		{Version: "v1", Kind: "ConfigMapList"},
		{Version: "v1", Kind: "ServiceList"},
	} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			if len(it.GetOwnerReferences()) == 0 {
				continue // not the operator's (the sample's ConfigMap)
			}
			out[strings.TrimSuffix(gvk.Kind, "List")+"/"+it.GetName()] = it.GetResourceVersion()
		}
	}
	return out
}

func hasReconciled(page, kind string) bool {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "controller_runtime_reconcile_total{") && strings.Contains(line, `controller="`+kind+`"`) &&
			strings.Contains(line, `result="success"`) && !strings.HasSuffix(line, " 0") {
			return true
		}
	}
	return false
}

func readSample(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

// samplePcap is a real capture from ../shared/pcaps, small enough for a ConfigMap.
func samplePcap(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Pcaps(t), "gopacket", "pcap", "test_dns.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func httpGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
