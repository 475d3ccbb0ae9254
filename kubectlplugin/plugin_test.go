package kubectlplugin

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
	"capfleet.dev/capfleet/query"
)

// apiServer starts a real API server with capfleet's CRDs and returns an admin client and a kubeconfig
// file for it.
func apiServer(t *testing.T) (client.Client, string) {
	t.Helper()
	env := &envtest.Environment{
		BinaryAssetsDirectory:    testenv.KubebuilderAssets(t),
		CRDDirectoryPaths:        []string{filepath.Join(testenv.Root(t), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
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
	k := &kube{kubeconfig: kubeconfig}
	c, _, err := k.client()
	if err != nil {
		t.Fatal(err)
	}
	return c, kubeconfig
}

func plugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand("kubectl capfleet")
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

func create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T: %v", obj, err)
	}
}

func TestStatusShowsEachResourceWithItsChildrenAndFigures(t *testing.T) {
	c, kubeconfig := apiServer(t)
	ctx := context.Background()
	ns := controllerstest.Namespace(t, c)

	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
		Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}}}
	create(t, c, cs)
	seen := metav1.NewTime(time.Now().Add(-3 * time.Second))
	cs.Status = v1alpha1.CaptureSensorStatus{
		CommonStatus: v1alpha1.CommonStatus{ObservedGeneration: cs.Generation, Conditions: []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Degraded", Message: "drops above 1% on node-b", LastTransitionTime: seen}}},
		NodesDesired: 2, NodesReady: 1, PacketsPerSecond: 123456, BytesPerSecond: 98_700_000,
		Drops:     &v1alpha1.Drops{KernelRing: 7, KafkaProduce: 5, Total: 12},
		PerNode:   []v1alpha1.NodeCaptureStatus{{Node: "node-b", PacketsPerSecond: 4321, Drops: v1alpha1.Drops{Total: 12}, LastHeartbeat: &seen}},
		DaemonSet: "edge-sensor",
	}
	if err := c.Status().Update(ctx, cs); err != nil {
		t.Fatal(err)
	}
	create(t, c, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge-sensor"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}})

	rj := &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "http-sample"},
		Spec: v1alpha1.ReplayJobSpec{Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "caps", Key: "http.pcap"}},
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: "default.edge.packets"}}}}
	create(t, c, rj)
	rj.Status = v1alpha1.ReplayJobStatus{CommonStatus: v1alpha1.CommonStatus{ObservedGeneration: rj.Generation},
		Phase: v1alpha1.ReplayRunning, PacketsSent: 750, PacketsTotal: 1000, PacketsPerSecond: 2000}
	if err := c.Status().Update(ctx, rj); err != nil {
		t.Fatal(err)
	}

	fc := &v1alpha1.FlowCollector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "routers"}}
	create(t, c, fc)
	fc.Status = v1alpha1.FlowCollectorStatus{CommonStatus: v1alpha1.CommonStatus{ObservedGeneration: fc.Generation},
		Replicas: 2, ReadyReplicas: 2, RecordsPerSecond: 54321, Exporters: 3, SequenceGaps: 4, TemplateErrors: 1, Service: "routers-collector"}
	if err := c.Status().Update(ctx, fc); err != nil {
		t.Fatal(err)
	}

	out, err := plugin(t, "--kubeconfig", kubeconfig, "-n", ns, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"CaptureSensor " + ns + "/edge", "NotReady Degraded: drops above 1% on node-b", "nodes 1/2",
		"123,456 pkt/s", "98.7 MB/s", "drops 12 kernel ring 7, kafka 5",
		"DaemonSet edge-sensor", "0/0 ready", "node node-b", "4,321 pkt/s",
		"ReplayJob " + ns + "/http-sample", "Running", "[###############.....]  75%", "750 of 1,000 packets",
		"FlowCollector " + ns + "/routers", "replicas 2/2", "54,321 rec/s", "exporters 3", "sequence gaps 4", "template errors 1",
		"Service routers-collector (UDP)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	// The heartbeat's age, counted from now: 3 s when the status was written, more on a slow machine.
	if m := regexp.MustCompile(`heartbeat (\d+)s ago`).FindStringSubmatch(out); m == nil {
		t.Errorf("status lacks the heartbeat's age")
	} else if age, _ := strconv.Atoi(m[1]); age < 3 || age > 120 {
		t.Errorf("heartbeat %ds ago, want 3 s or a little more", age)
	}
	// One resource by name, and a name that is not there.
	if out, err := plugin(t, "--kubeconfig", kubeconfig, "-n", ns, "status", "http-sample"); err != nil || strings.Contains(out, "CaptureSensor") {
		t.Errorf("status http-sample: %v\n%s", err, out)
	}
	if _, err := plugin(t, "--kubeconfig", kubeconfig, "-n", ns, "status", "nope"); err == nil || !strings.Contains(err.Error(), `named "nope"`) {
		t.Errorf("status of a missing name: %v", err)
	}
	// A generation the operator has not observed reads as Reconciling, as kstatus reads it.
	cs.Spec.Interfaces = []string{"eth1"}
	if err := c.Update(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if out, _ := plugin(t, "--kubeconfig", kubeconfig, "-n", ns, "status", "edge"); !strings.Contains(out, "Reconciling") {
		t.Errorf("a new generation is not shown as Reconciling:\n%s", out)
	}
}

// top through a pipeline finds the keyspace, contact points and credentials the operator gave the
// pipeline's processors (built by the operator's own builder), and prints what `capfleet query top` with
// those flags typed out prints.
func TestTopConnectsAsThePipelinesProcessors(t *testing.T) {
	c, kubeconfig := apiServer(t)
	ctx := context.Background()
	ns := controllerstest.Namespace(t, c)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	cl, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, cl, ks, store.DefaultReplication); err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	frames := pipelinetest.ReadCapture(t, filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"))
	flows := pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, "edge")
	if err := store.NewWriter(s, store.Options{}).WriteFlows(ctx, flows, 0); err != nil {
		t.Fatal(err)
	}
	first, last := pipelinetest.TimeSpan(frames)
	span := []string{"--from", first.Add(-time.Second).UTC().Format(time.RFC3339), "--to", last.Add(time.Second).UTC().Format(time.RFC3339)}

	// The Secret holds the credentials hack/cassandra.sh made, as an admin would create it.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cass"}, Data: map[string][]byte{}}
	files, _ := os.ReadDir(ccfg.SecretDir)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(ccfg.SecretDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		secret.Data[f.Name()] = b
	}
	if len(secret.Data) == 0 {
		t.Fatalf("no credentials in %s", ccfg.SecretDir)
	}
	create(t, c, secret)
	pp := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge-flows"},
		Spec: v1alpha1.PacketPipelineSpec{Source: v1alpha1.PipelineSource{Sensor: "edge"},
			Sinks: v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: ks}}}}
	create(t, c, pp)
	port, _ := strconv.Atoi(strconv.Itoa(ccfg.Port))
	dep := children.PipelineDeployment(pp, "edge.packets", children.Options{Image: "capfleet:dev",
		Cassandra: children.CassandraDefaults{Hosts: ccfg.Hosts, Port: int32(port), SecretName: "cass"}})
	create(t, c, dep)

	if _, err := plugin(t, "--kubeconfig", kubeconfig, "-n", ns, "top", "edge-flows"); err == nil || !strings.Contains(err.Error(), "no processor Deployment yet") {
		t.Errorf("top before the operator wrote status.deployment: %v", err)
	}
	pp.Status.Deployment = dep.Name
	meta.SetStatusCondition(&pp.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Running"})
	if err := c.Status().Update(ctx, pp); err != nil {
		t.Fatal(err)
	}
	got, err := plugin(t, append([]string{"--kubeconfig", kubeconfig, "-n", ns, "top", "edge-flows", "--by", "packets", "--group", "pair", "-o", "csv"}, span...)...)
	if err != nil {
		t.Fatal(err)
	}
	q := query.NewCommand()
	var want bytes.Buffer
	q.SetOut(&want)
	q.SetArgs(append([]string{"top", "--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port),
		"--cassandra-secret-dir", ccfg.SecretDir, "--by", "packets", "--group", "pair", "-o", "csv"}, span...))
	if err := q.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(want.String(), "\n") < 2 {
		t.Fatalf("query top found nothing to compare with:\n%s", want.String())
	}
	if got != want.String() {
		t.Errorf("kubectl capfleet top:\n%s\ncapfleet query top:\n%s", got, want.String())
	}
	// The credentials went through a private temporary folder that is gone afterwards.
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubectl-capfleet-*")); len(left) > 0 {
		t.Errorf("credentials left behind in %v", left)
	}
}

// The binary answers as the plugin under the name krew installs it as.
func TestBinaryNamedKubectlCapfleetIsThePlugin(t *testing.T) {
	bin := filepath.Join(t.TempDir(), BinaryName)
	build := exec.Command("go", "build", "-o", bin, "./cmd/capfleet")
	build.Dir = testenv.Root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	for _, want := range []string{"kubectl capfleet [command]", "status", "top", "pcap"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("kubectl-capfleet --help lacks %q:\n%s", want, out)
		}
	}
}
