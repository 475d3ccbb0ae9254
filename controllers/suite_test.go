package controllers_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/controllers"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/manager"
)

// The suite runs the real manager against a real kube-apiserver and etcd (envtest). They start once, on the
// first test that needs them, and stop when the package's tests end.
var (
	envOnce sync.Once
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	envErr  error
	stopMgr context.CancelFunc
	// topicsMgr is the operator's topic manager, on the broker hack/kafka.sh started; nil without one.
	topicsMgr *topics.Manager
	// figures brings heartbeats from statsTopic into status, every statusInterval; nil without a broker.
	figures        *controllers.Figures
	statsTopic     = fmt.Sprintf("capfleet.stats.test-%d", time.Now().UnixNano())
	statusInterval = 2 * time.Second
	testOpts       = children.Options{
		Image: "capfleet:test", ImagePullPolicy: corev1.PullNever,
		Kafka:     children.KafkaDefaults{Brokers: []string{"kafka.test:9092"}},
		Cassandra: children.CassandraDefaults{Hosts: []string{"cassandra.test"}, Port: 9042},
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopMgr != nil {
		stopMgr()
	}
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// cluster starts the control plane and the manager once and returns a client to it.
func cluster(t *testing.T) client.Client {
	t.Helper()
	assets := testenv.KubebuilderAssets(t)
	root := testenv.Root(t)
	envOnce.Do(func() {
		// The manager's log goes to stderr only with -v; a failing assertion says what went wrong.
		logTo := io.Discard
		if testing.Verbose() {
			logTo = os.Stderr
		}
		ctrl.SetLogger(zap.New(zap.WriteTo(logTo), zap.UseDevMode(true)))
		env = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: assets,
		}
		if cfg, envErr = env.Start(); envErr != nil {
			return
		}
		scheme := manager.Scheme()
		if k8s, envErr = client.New(cfg, client.Options{Scheme: scheme}); envErr != nil {
			return
		}
		// The manager runs as a user granted only the generated ClusterRole, so a missing RBAC marker fails here
		// as it would on a cluster.
		var opCfg *rest.Config
		if opCfg, envErr = operatorUser(root); envErr != nil {
			return
		}
		var mgr ctrl.Manager
		mgr, envErr = ctrl.NewManager(opCfg, ctrl.Options{
			Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			Cache: controllers.CacheOptions(),
		})
		if envErr != nil {
			return
		}
		var kc kafkaconn.Config
		topicsMgr, kc = realKafkaTopics()
		if topicsMgr != nil {
			if figures, envErr = heartbeats(mgr, topicsMgr, kc); envErr != nil {
				return
			}
		}
		if envErr = controllers.Setup(mgr, testOpts, topicsMgr, figures); envErr != nil {
			return
		}
		var ctx context.Context
		ctx, stopMgr = context.WithCancel(context.Background())
		go func() {
			if err := mgr.Start(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "manager stopped:", err)
			}
		}()
	})
	if envErr != nil {
		t.Fatalf("starting envtest with assets in %s: %v", assets, envErr)
	}
	return k8s
}

// operatorUser provisions the user the operator runs as, bound to config/rbac/role.yaml and nothing else.
func operatorUser(root string) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, role); err != nil {
		return nil, err
	}
	const name = "capfleet-operator"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name}},
	}
	if err := k8s.Create(ctx, binding); err != nil {
		return nil, err
	}
	u, err := env.AddUser(envtest.User{Name: name}, cfg)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// realKafkaTopics connects the operator to the broker hack/kafka.sh started, when it runs; the topic tests
// then fail (under CI) or skip, and the other tests run without topics.
func realKafkaTopics() (*topics.Manager, kafkaconn.Config) {
	path, err := kafkatest.EnvPath()
	if err != nil {
		return nil, kafkaconn.Config{}
	}
	kenv, err := kafkatest.ReadEnv(path)
	if err != nil {
		return nil, kafkaconn.Config{}
	}
	kc := kenv.Plain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kafkatest.Ping(ctx, kc); err != nil {
		return nil, kc
	}
	cl, err := kc.NewClient()
	if err != nil {
		return nil, kc
	}
	return topics.New(cl), kc
}

// heartbeats runs the operator's stats consumer on a topic of the suite's own.
func heartbeats(mgr ctrl.Manager, tm *topics.Manager, kc kafkaconn.Config) (*controllers.Figures, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tm.Ensure(ctx, topics.Want{Name: statsTopic, Partitions: 3, ReplicationFactor: 1}); err != nil {
		return nil, err
	}
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	f := controllers.NewFigures(agg, statusInterval)
	return f, mgr.Add(&heartbeat.Consumer{Aggregator: agg, Kafka: kc, Topic: statsTopic, OnChange: f.Changed})
}

// namespace makes a fresh namespace for one test, so tests never see each other's objects.
func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "capfleet-test-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// eventually retries check until it returns nil, failing the test with its last error after 30 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
