package controllers_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

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
			obj, field := rawManifest(t, f)
			obj.SetNamespace(ns)
			err := c.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted; want a rejection naming %s", field)
			}
			if !strings.Contains(err.Error(), field) {
				t.Fatalf("rejected, but the message does not name %s: %v", field, err)
			}
		})
	}
}

// `kubectl explain` teaches every field: each property of each CRD's schema carries a description.
func TestEveryFieldDescribed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Root(t), "config", "crd", "bases", "*.yaml"))
	if len(files) != 3 {
		t.Fatalf("%d CRDs, want 3", len(files))
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
