package controllers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/testenv"
)

// Every manifest in testdata/invalid is refused at admission, with a message that names the field its
// "# expect:" line gives.
func TestInvalidManifestsRejected(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	files, err := filepath.Glob(filepath.Join(testenv.Root(t), "testdata", "invalid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid manifests: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			obj, field, messages := rawManifest(t, f)
			obj.SetNamespace(ns)
			err := c.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted; want a rejection naming %s", field)
			}
			if !strings.Contains(err.Error(), field) {
				t.Fatalf("rejected, but the message does not name %s: %v", field, err)
			}
			for _, m := range messages {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("rejected, but the message does not say %q: %v", m, err)
				}
			}
		})
	}
}

// Cassandra refuses to create tables in its own keyspaces, whatever their case; a pipeline naming one would
// retry forever, so admission refuses every one of them and still takes a keyspace that only starts alike.
func TestSystemKeyspacesRejected(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	pipeline := func(name, keyspace string) *v1alpha1.PacketPipeline {
		return &v1alpha1.PacketPipeline{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.PacketPipelineSpec{
				Source: v1alpha1.PipelineSource{Topic: "raw"},
				Sinks:  v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Flows: true, Keyspace: keyspace}},
			},
		}
	}
	for i, ks := range []string{"system", "system_auth", "system_schema", "system_distributed", "system_traces",
		"system_views", "system_virtual_schema", "SYSTEM_AUTH"} {
		err := c.Create(context.Background(), pipeline(fmt.Sprintf("ks-%d", i), ks))
		if err == nil {
			t.Errorf("keyspace %s accepted", ks)
			continue
		}
		if !strings.Contains(err.Error(), "spec.sinks.cassandra.keyspace") || !strings.Contains(err.Error(), "keyspace "+ks+" is a Cassandra system keyspace") {
			t.Errorf("keyspace %s: rejection does not name the field and the keyspace: %v", ks, err)
		}
	}
	if err := c.Create(context.Background(), pipeline("ks-ok", "system_flows")); err != nil {
		t.Errorf("keyspace system_flows refused: %v", err)
	}
}

// A short name the API server already serves for another resource makes `kubectl get <short> <name>` reach
// that resource instead (cs is componentstatuses): no capfleet name, short or long, may equal any name the
// real API server serves for something else.
func TestShortNamesDoNotCollide(t *testing.T) {
	cluster(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	taken := map[string]string{}
	var ours []metav1.APIResource
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if gv.Group == v1alpha1.GroupVersion.Group {
				ours = append(ours, r)
				continue
			}
			for _, n := range append([]string{r.Name, r.SingularName}, r.ShortNames...) {
				taken[n] = l.GroupVersion + " " + r.Name
			}
		}
	}
	if len(ours) != 4 {
		t.Fatalf("discovery serves %d capfleet resources, want 4", len(ours))
	}
	for _, r := range ours {
		if len(r.ShortNames) == 0 {
			t.Errorf("%s has no short name", r.Name)
		}
		for _, n := range append([]string{r.Name, r.SingularName}, r.ShortNames...) {
			if other, ok := taken[n]; ok {
				t.Errorf("%s: name %q is already served for %s", r.Name, n, other)
			}
		}
	}
}

// `kubectl explain` teaches every field: each property of each CRD's schema carries a description.
func TestEveryFieldDescribed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Root(t), "config", "crd", "bases", "*.yaml"))
	if len(files) != 4 {
		t.Fatalf("%d CRDs, want 4", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		for _, v := range crd.Spec.Versions {
			for _, part := range []string{"spec", "status"} {
				s := v.Schema.OpenAPIV3Schema.Properties[part]
				undescribed(t, crd.Spec.Names.Kind+"."+part, s)
			}
		}
	}
}

func undescribed(t *testing.T, path string, s apiextensionsv1.JSONSchemaProps) {
	t.Helper()
	if strings.TrimSpace(s.Description) == "" {
		t.Errorf("%s has no description", path)
	}
	for name, p := range s.Properties {
		undescribed(t, path+"."+name, p)
	}
	if s.Items != nil && s.Items.Schema != nil && len(s.Items.Schema.Properties) > 0 {
		for name, p := range s.Items.Schema.Properties {
			undescribed(t, path+"[]."+name, p)
		}
	}
}

// The real kubectl, against the real API server, explains the sensor's spec field by field.
func TestKubectlExplain(t *testing.T) {
	cluster(t)
	kubectl := filepath.Join(testenv.KubebuilderAssets(t), "kubectl")
	kubeconfig := writeKubeconfig(t)
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "explain", "capturesensor.spec").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, out)
	}
	for _, field := range []string{"interfaces", "filter", "snapLength", "sampleRate", "ring", "bufferPackets", "topic", "kafka",
		"nodeSelector", "tolerations", "resources", "dropThresholdPercent", "topicDeletionPolicy", "BPF filter in tcpdump syntax"} {
		if !strings.Contains(string(out), field) {
			t.Errorf("kubectl explain capturesensor.spec does not mention %q:\n%s", field, out)
		}
	}
	out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "capfleet", "-A").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get capfleet: %v\n%s", err, out)
	}
}

// writeKubeconfig points kubectl at the envtest API server.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// "any" alone is taken, as tcpdump users write it, and reaches the sensors as it is.
func TestSensorOnAnyAccepted(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"},
		Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"any"}, Filter: "tcp port 80"}}
	if err := c.Create(context.Background(), cs); err != nil {
		t.Fatalf("interfaces [any] refused: %v", err)
	}
	eventually(t, "DaemonSet capturing on any", func() error {
		ds := &appsv1.DaemonSet{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "everything-sensor"}, ds); err != nil {
			return err
		}
		return hasArgs(ds.Spec.Template.Spec.Containers[0], "--interfaces=any", "--filter=tcp port 80")
	})
}
