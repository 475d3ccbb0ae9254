package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/testenv"
)

// sample reads a manifest from config/samples into obj, placed in namespace ns.
func sample(t *testing.T, file, ns string, obj client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(t), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	obj.SetNamespace(ns)
}

// rawManifest reads a manifest as it is written, so that values a typed struct would drop (a zero, say)
// reach the API server. It returns the field its "# expect:" line names and the text its "# expect-message:"
// lines, if any, want in the rejection.
func rawManifest(t *testing.T, path string) (*unstructured.Unstructured, string, []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var expect string
	var messages []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "# expect: "); ok {
			expect = strings.TrimSpace(rest)
		}
		if rest, ok := strings.CutPrefix(line, "# expect-message: "); ok {
			messages = append(messages, strings.TrimSpace(rest))
		}
	}
	if expect == "" {
		t.Fatalf("%s has no '# expect: <field>' line", path)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u, expect, messages
}

// condition returns a condition of a capfleet resource's status, or nil.
func condition(obj client.Object, typ string) *metav1.Condition {
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *v1alpha1.CaptureSensor:
		conds = o.Status.Conditions
	case *v1alpha1.ReplayJob:
		conds = o.Status.Conditions
	case *v1alpha1.PacketPipeline:
		conds = o.Status.Conditions
	case *v1alpha1.FlowCollector:
		conds = o.Status.Conditions
	}
	return meta.FindStatusCondition(conds, typ)
}

// hasArgs fails unless every wanted argument is among the container's.
func hasArgs(c corev1.Container, want ...string) error {
	for _, w := range want {
		if !slices.Contains(c.Args, w) {
			return &missingArg{w, c.Args}
		}
	}
	return nil
}

type missingArg struct {
	want string
	args []string
}

func (m *missingArg) Error() string {
	return "argument " + m.want + " missing from " + strings.Join(m.args, " ")
}

// controlledBy fails unless obj carries a controller owner reference to owner that lets the garbage
// collector delete obj with its owner.
func controlledBy(t *testing.T, obj, owner client.Object, kind string) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil {
		t.Fatalf("%s has no controller reference", obj.GetName())
	}
	if ref.UID != owner.GetUID() || ref.Kind != kind || ref.APIVersion != v1alpha1.GroupVersion.String() {
		t.Fatalf("%s is controlled by %s %s/%s, want %s %s", obj.GetName(), ref.Kind, ref.Name, ref.UID, kind, owner.GetUID())
	}
	if ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("%s: owner reference does not block owner deletion", obj.GetName())
	}
}

// toUnstructured is for objects whose raw form a test inspects.
func toUnstructured(t *testing.T, obj runtime.Object) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// change reads obj, applies edit and writes it back, retrying when the operator wrote in between.
func change(t *testing.T, c client.Client, obj client.Object, edit func(), opts ...client.UpdateOption) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		edit()
		return c.Update(context.Background(), obj, opts...)
	})
	if err != nil {
		t.Fatal(err)
	}
}
