package controllers_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/controllers/controllerstest"
	"capfleet.dev/capfleet/controllers/topics"
)

// The suite runs the real manager against a real kube-apiserver and etcd (envtest), started once by the
// first test that calls cluster; see controllerstest.
var (
	cfg *rest.Config
	// topicsMgr is the operator's topic manager, on the broker hack/kafka.sh started; nil without one.
	topicsMgr *topics.Manager
	// operator is the operator under test.
	operator *controllerstest.Operator
	// reconciles tells when the operator reconciled an object.
	reconciles *controllerstest.Reconciles
	statsTopic = controllerstest.StatsTopic

	namespace    = controllerstest.Namespace
	eventually   = controllerstest.Eventually
	consistently = controllerstest.Consistently
	get          = controllerstest.Get
)

func TestMain(m *testing.M) {
	code := m.Run()
	controllerstest.Stop()
	os.Exit(code)
}

// cluster starts the control plane and the operator once and returns an administrator's client to it.
func cluster(t *testing.T) client.Client {
	t.Helper()
	op := controllerstest.Start(t)
	operator, cfg, topicsMgr, reconciles = op, op.Config, op.Topics, op.Reconciles
	return op.Client
}

// kstatusOf computes what kstatus (and so Flux and Argo CD) says of an object.
func kstatusOf(t *testing.T, obj client.Object) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

func key(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }
