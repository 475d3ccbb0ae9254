// Package manager is `capfleet manager`: the operator that reconciles capfleet resources.
package manager

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers"
	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
)

// Scheme knows the Kubernetes types and capfleet's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // only a programming error makes registration fail
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Flags are the operator's settings.
type Flags struct {
	Kubeconfig  string
	MetricsAddr string
	ProbeAddr   string
	LeaderElect bool
	Image       string
	PullPolicy  string
	// Kafka is the operator's own connection, also the default of every workload.
	Kafka          kafkaconn.Config
	KafkaSecret    string
	ManageTopics   bool
	StatsTopic     string
	StatusInterval time.Duration
	CassandraHosts []string
	CassandraPort  int32
	CassandraTLS   bool
	CassandraSec   string
	// WorkloadHostNetwork puts every workload in its node's network namespace (nodes without a pod network).
	WorkloadHostNetwork bool
}

// NewCommand returns the `manager` subcommand.
func NewCommand() *cobra.Command {
	f := &Flags{}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the operator: reconcile CaptureSensors, ReplayJobs and PacketPipelines",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses $KUBECONFIG or the in-cluster config")
	fs.StringVar(&f.MetricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint; 0 turns it off")
	fs.StringVar(&f.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&f.LeaderElect, "leader-elect", false, "elect a leader, so only one of several replicas reconciles")
	fs.StringVar(&f.Image, "image", envOr("CAPFLEET_IMAGE", "capfleet:dev"), "image the workloads run (env CAPFLEET_IMAGE)")
	fs.StringVar(&f.PullPolicy, "image-pull-policy", "IfNotPresent", "pull policy of the workload image")
	f.Kafka.AddFlags(fs)
	fs.StringVar(&f.KafkaSecret, "kafka-secret", "", "default Secret (in each resource's namespace) with the workloads' Kafka credentials")
	fs.BoolVar(&f.ManageTopics, "manage-topics", true, "create and tend the Kafka topics resources declare")
	fs.StringVar(&f.StatsTopic, "stats-topic", heartbeat.DefaultTopic, "topic the workloads' heartbeats go to; empty turns status figures off")
	fs.DurationVar(&f.StatusInterval, "status-interval", 10*time.Second, "a resource's status figures change at most once per this interval")
	fs.StringSliceVar(&f.CassandraHosts, "cassandra-hosts", []string{"cassandra"}, "default Cassandra contact points")
	fs.Int32Var(&f.CassandraPort, "cassandra-port", 9042, "default Cassandra CQL port")
	fs.BoolVar(&f.CassandraTLS, "cassandra-tls", false, "use TLS to Cassandra by default")
	fs.StringVar(&f.CassandraSec, "cassandra-secret", "", "default Secret (in each resource's namespace) with Cassandra credentials")
	fs.BoolVar(&f.WorkloadHostNetwork, "workload-host-network", false, "run every workload in its node's network namespace, for nodes without a pod network (the local cluster)")
	return cmd
}

// Options turns the flags into what the child builders need.
func (f *Flags) Options() children.Options {
	return children.Options{
		Image:           f.Image,
		ImagePullPolicy: corev1.PullPolicy(f.PullPolicy),
		Kafka:           children.KafkaDefaults{Brokers: f.Kafka.Brokers, TLS: f.Kafka.TLS, SecretName: f.KafkaSecret},
		StatsTopic:      f.StatsTopic,
		Cassandra: children.CassandraDefaults{
			Hosts: f.CassandraHosts, Port: f.CassandraPort, TLS: f.CassandraTLS, SecretName: f.CassandraSec,
		},
		HostNetwork: f.WorkloadHostNetwork,
	}
}

func run(f *Flags) error {
	ctrl.SetLogger(zap.New())
	cfg, err := restConfig(f.Kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 Scheme(),
		Metrics:                metricsserver.Options{BindAddress: f.MetricsAddr},
		HealthProbeBindAddress: f.ProbeAddr,
		LeaderElection:         f.LeaderElect,
		LeaderElectionID:       "capfleet-manager.capture.capfleet.dev",
		Cache:                  controllers.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	var tm *topics.Manager
	if f.ManageTopics {
		f.Kafka.ClientID = "capfleet-manager"
		cl, err := f.Kafka.NewClient()
		if err != nil {
			return err
		}
		defer cl.Close()
		tm = topics.New(cl)
	}
	var figures *controllers.Figures
	if f.StatsTopic != "" {
		agg := heartbeat.NewAggregator(heartbeat.Options{})
		figures = controllers.NewFigures(agg, f.StatusInterval)
		if tm != nil {
			if err := mgr.Add(controllers.StatsTopicCreator(tm, f.StatsTopic)); err != nil {
				return err
			}
		}
		log := ctrl.Log.WithName("heartbeats")
		if err := mgr.Add(&heartbeat.Consumer{
			Aggregator: agg, Kafka: f.Kafka, Topic: f.StatsTopic, OnChange: figures.Changed, LeaderOnly: f.LeaderElect,
			OnError: func(err error) { log.Error(err, "reading heartbeats") },
		}); err != nil {
			return err
		}
	}
	if err := controllers.Setup(mgr, f.Options(), tm, figures); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
