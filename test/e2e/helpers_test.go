//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/manager"
)

// repoRoot is the folder holding go.mod, found upwards from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != "/"; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("no go.mod above the working directory")
	return ""
}

// restConfig is the local node's (hack/local-cluster.sh), or $KUBECONFIG's.
func restConfig(t *testing.T) *rest.Config {
	t.Helper()
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		path = filepath.Join(repoRoot(t), ".run/local-cluster/kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("the local cluster is not up (kubeconfig %s: %v): run hack/e2e.sh, or hack/local-cluster.sh up", path, err)
	}
	return cfg
}

// cluster connects to the local node, where the operator runs.
func cluster(t *testing.T) client.Client {
	t.Helper()
	cfg := restConfig(t)
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var nodes corev1.NodeList
	if err := c.List(context.Background(), &nodes); err != nil || len(nodes.Items) == 0 {
		t.Fatalf("the local cluster does not answer (%d nodes, %v): run hack/local-cluster.sh up", len(nodes.Items), err)
	}
	return c
}

// replaySummary is the end of the log of the Job's pod: the replayer's tcpreplay-like statistics.
func replaySummary(t *testing.T, ns, job string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of job %s: %d, %v", job, len(pods.Items), err)
	}
	b, err := cs.CoreV1().Pods(ns).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s: %v", pods.Items[0].Name, err)
	}
	return string(b)
}

func randomSuffix(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// namespace creates a namespace of its own for the test and deletes it when the test ends.
func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + randomSuffix(t)}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), ns); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// vethPair makes a veth pair with no addresses, forwarding and IPv6 off on both ends, so frames sent on one
// end reach capture sockets on the other and nothing else; it is removed when the test ends.
func vethPair(t *testing.T, tx, rx string) {
	t.Helper()
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "link", "del", tx).Run() // left over from a killed run
	run("ip", "link", "add", tx, "type", "veth", "peer", "name", rx)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", tx).Run() })
	for _, i := range []string{tx, rx} {
		run("sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1", "net.ipv4.conf."+i+".forwarding=0")
		run("ip", "link", "set", i, "up")
	}
}

// eventually retries f every second until it returns nil, failing the test with f's last error after limit.
func eventually(t *testing.T, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not after %s: %v", what, limit, err)
		}
		time.Sleep(time.Second)
	}
}

// current says whether the object is Ready, and Current to kstatus as GitOps tools use it.
func current(c client.Client, obj client.Object) error {
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		return err
	}
	if res.Status != status.CurrentStatus {
		return fmt.Errorf("%T %s: kstatus %s: %s", obj, obj.GetName(), res.Status, res.Message)
	}
	// kstatus calls an object without conditions Current, as it is before the operator's first status: so
	// Ready=True for this very generation is required too.
	conds, _, _ := unstructured.NestedSlice(m, "status", "conditions")
	for _, c := range conds {
		c, _ := c.(map[string]any)
		if c["type"] == "Ready" {
			if c["status"] != "True" || c["observedGeneration"] != obj.GetGeneration() {
				return fmt.Errorf("%T %s: Ready %v (generation %v of %d): %v", obj, obj.GetName(), c["status"], c["observedGeneration"], obj.GetGeneration(), c["message"])
			}
			return nil
		}
	}
	return fmt.Errorf("%T %s: no Ready condition yet", obj, obj.GetName())
}

// commandCount runs an oracle (tcpdump, tshark) and counts the lines it prints that match keep.
func commandCount(t *testing.T, keep func(string) bool, name string, args ...string) int {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && keep(l) {
			n++
		}
	}
	return n
}

// cassandraCreds is the Secret cassandra-creds of ns holding the login of hack/cassandra.sh, as the demo
// provides it: the operator's local configuration names it for every workload that reads Cassandra.
func cassandraCreds(t *testing.T, ccfg cassconn.Config, ns string) *corev1.Secret {
	t.Helper()
	creds := map[string][]byte{}
	for _, f := range []string{"username", "password"} {
		b, err := os.ReadFile(filepath.Join(ccfg.SecretDir, f))
		if err != nil {
			t.Fatal(err)
		}
		creds[f] = b
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cassandra-creds", Namespace: ns}, Data: creds}
}
