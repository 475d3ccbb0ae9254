// Package controllerstest runs the operator's controllers inside the test binary against a real
// kube-apiserver and etcd (envtest), for the envtest suite of package controllers and the integration tests
// that run real workloads against the operator. The control plane and the manager start once, on the first
// test that asks, and stop when the package's tests end (Stop, from TestMain).
package controllerstest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
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

// StatusInterval is how often the operator under test may rewrite a resource's figures.
const StatusInterval = 2 * time.Second

var (
	// StatsTopic is where the operator under test reads heartbeats; a workload a test runs beats there.
	StatsTopic = fmt.Sprintf("capfleet.stats.test-%d", time.Now().UnixNano())
	// Options are the operator's defaults: children name an image and brokers nothing pulls or dials.
	Options = children.Options{
		Image: "capfleet:test", ImagePullPolicy: corev1.PullNever,
		Kafka:     children.KafkaDefaults{Brokers: []string{"kafka.test:9092"}},
		Cassandra: children.CassandraDefaults{Hosts: []string{"cassandra.test"}, Port: 9042},
	}
)

// Operator is the running operator and what a test needs to look at it.
type Operator struct {
	// Client is an administrator's client; Config its connection.
	Client client.Client
	Config *rest.Config
	// Topics is the operator's topic manager, on the broker hack/kafka.sh started; nil without one.
	Topics *topics.Manager
	// Figures brings heartbeats from StatsTopic into status, every StatusInterval; nil without a broker.
	Figures *controllers.Figures
	// Reconciles counts the reconciles the operator ran.
	Reconciles *Reconciles
}

var (
	once    sync.Once
	op      *Operator
	env     *envtest.Environment
	stopMgr context.CancelFunc
	failed  error
)

// Start starts the control plane and the operator, once per test binary, and returns it.
func Start(t testing.TB) *Operator {
	t.Helper()
	assets := testenv.KubebuilderAssets(t)
	root := testenv.Root(t)
	once.Do(func() { op, failed = start(assets, root) })
	if failed != nil {
		t.Fatalf("starting envtest with assets in %s: %v", assets, failed)
	}
	return op
}

// Stop stops what Start started; TestMain calls it once the tests ended.
func Stop() {
	if stopMgr != nil {
		stopMgr()
	}
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
}

func start(assets, root string) (*Operator, error) {
	// The manager's log goes to stderr only with -v; a failing assertion says what went wrong.
	logTo := io.Discard
	if testing.Verbose() {
		logTo = os.Stderr
	}
	o := &Operator{Reconciles: newReconciles()}
	ctrl.SetLogger(logr.New(o.Reconciles.sink(zap.New(zap.WriteTo(logTo), zap.UseDevMode(true)).GetSink())))
	env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if o.Config, err = env.Start(); err != nil {
		return nil, err
	}
	scheme := manager.Scheme()
	if o.Client, err = client.New(o.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	// The manager runs as a user granted only the generated ClusterRole, so a missing RBAC marker fails here
	// as it would on a cluster.
	opCfg, err := operatorUser(o.Client, o.Config, root)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: controllers.CacheOptions(),
	})
	if err != nil {
		return nil, err
	}
	var kc kafkaconn.Config
	o.Topics, kc = realKafkaTopics()
	if o.Topics != nil {
		if o.Figures, err = heartbeats(mgr, o.Topics, kc); err != nil {
			return nil, err
		}
	}
	if err := controllers.Setup(mgr, Options, o.Topics, o.Figures); err != nil {
		return nil, err
	}
	var ctx context.Context
	ctx, stopMgr = context.WithCancel(context.Background())
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	return o, nil
}

// operatorUser provisions the user the operator runs as, bound to config/rbac/role.yaml and nothing else.
func operatorUser(admin client.Client, cfg *rest.Config, root string) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := admin.Create(ctx, role); err != nil {
		return nil, err
	}
	const name = "capfleet-operator"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name}},
	}
	if err := admin.Create(ctx, binding); err != nil {
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
	if _, err := tm.Ensure(ctx, topics.Want{Name: StatsTopic, Partitions: 3, ReplicationFactor: 1}); err != nil {
		return nil, err
	}
	agg := heartbeat.NewAggregator(heartbeat.Options{})
	f := controllers.NewFigures(agg, StatusInterval)
	return f, mgr.Add(&heartbeat.Consumer{Aggregator: agg, Kafka: kc, Topic: StatsTopic, OnChange: f.Changed})
}

// NeedFigures ends a test when the operator reads no heartbeats (no broker).
func (o *Operator) NeedFigures(t testing.TB) {
	t.Helper()
	kafkatest.Plain(t)
	if o.Figures == nil {
		testenv.Missing(t, "the operator under test reads no heartbeats: start Kafka with hack/kafka.sh start")
	}
}
