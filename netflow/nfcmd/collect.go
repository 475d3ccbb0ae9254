package nfcmd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/netflow/collector"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/processor/store"
)

type collectOptions struct {
	cfg         collector.Config
	cass        cassconn.Config
	kafka       kafkaconn.Config // for heartbeats only
	heartbeat   heartbeat.Config
	store       bool
	keyspace    string
	replication string
	metricsAddr string
	healthAddr  string
}

// NewCollectCommand returns `capfleet collect`.
func NewCollectCommand() *cobra.Command {
	o := collectOptions{heartbeat: heartbeat.DefaultConfig(heartbeat.KindFlowCollector)}
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Receive NetFlow v5/v9 and IPFIX over UDP and store the flows in Cassandra",
		Long: `collect is a NetFlow/IPFIX collector. It receives export packets on --listen, keeps templates per
exporter and observation domain (forgetting those not refreshed within --template-timeout), counts the
units the sequence numbers say were lost, and stores every flow record in the flow tables of --keyspace,
where "capfleet query flows | top | graph" read them. A stored flow's sensor is --sensor-prefix and the
exporter's address. Counters are served as capfleet_collect_* on --metrics-addr and, for a FlowCollector's
pods, sent as heartbeats to the operator's stats topic (Kafka is used for nothing else).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runCollect(ctx, o, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
		},
	}
	fs := cmd.Flags()
	o.cass.AddFlags(fs)
	o.kafka.AddFlags(fs)
	o.heartbeat.AddFlags(fs)
	fs.StringVar(&o.cfg.Listen, "listen", ":2055", "UDP address to receive export packets on")
	fs.DurationVar(&o.cfg.TemplateTimeout, "template-timeout", netflow.DefaultTemplateTimeout, "forget a template not refreshed for this long (RFC 7011 template timeout over UDP); negative never")
	fs.StringVar(&o.cfg.SensorPrefix, "sensor-prefix", "netflow:", "stored flows' sensor is this prefix and the exporter's address")
	fs.DurationVar(&o.cfg.FlowTTL, "flow-ttl", 720*time.Hour, "time to live of stored flows (0: forever)")
	fs.DurationVar(&o.cfg.FlushInterval, "flush-interval", time.Second, "how often received flows are written")
	fs.IntVar(&o.cfg.MaxPending, "max-pending", 200_000, "flows kept while Cassandra is slow or away; beyond, new ones are dropped and counted")
	fs.BoolVar(&o.store, "store-flows", true, "store flows in Cassandra (false: decode and count only)")
	fs.StringVar(&o.keyspace, "keyspace", processcmd.DefaultKeyspace, "Cassandra keyspace, created with its tables when missing")
	fs.StringVar(&o.replication, "replication", store.DefaultReplication, "replication of the keyspace when it is created, as JSON")
	fs.StringVar(&o.metricsAddr, "metrics-addr", ":9090", "serve Prometheus /metrics here (empty: off)")
	fs.StringVar(&o.healthAddr, "health-addr", ":9091", "serve /healthz and /readyz here (empty: off)")
	return cmd
}

func runCollect(ctx context.Context, o collectOptions, log *slog.Logger) error {
	var c *collector.Collector
	var w collector.FlowWriter
	if o.store {
		session, err := openStore(ctx, o, log)
		if err != nil {
			return err
		}
		defer session.Close()
		w = store.NewWriter(session, store.Options{OnRetry: func(err error) { c.WriteFailed(err) }})
	}
	c, err := collector.New(o.cfg, w, log)
	if err != nil {
		return err
	}
	if o.kafka.ClientID == "" {
		o.kafka.ClientID = "capfleet-collect-heartbeat"
	}
	stopBeats, err := workload.StartHeartbeat(o.heartbeat, o.kafka, func() heartbeat.Counters { return heartbeatCounters(c.C) }, nil, log)
	if err != nil {
		return err
	}
	defer stopBeats()
	servers, err := workload.Serve(context.Background(), workload.HTTP{
		MetricsAddr: o.metricsAddr,
		HealthAddr:  o.healthAddr,
		Registry:    workload.NewRegistry(collector.NewMetrics(c.C)),
		Ready: func() error {
			if !c.Ready() {
				return errors.New("not ready: Cassandra refuses writes")
			}
			return nil
		},
	}, log)
	if err != nil {
		return err
	}
	defer servers.Close()
	log.Info("collecting", "listen", c.Addr().String(), "store_flows", o.store, "keyspace", o.keyspace)
	return c.Run(ctx)
}

// openStore creates the schema (retrying while Cassandra starts up) and opens the keyspace session.
func openStore(ctx context.Context, o collectOptions, log *slog.Logger) (*gocql.Session, error) {
	cl, err := o.cass.Cluster()
	if err != nil {
		return nil, err
	}
	return store.MigrateAndConnect(ctx, cl, o.keyspace, o.replication, log)
}

// heartbeatCounters maps the collector's counters onto a heartbeat: records decoded in, flows stored out,
// template errors and malformed packets as decode errors, flows dropped while Cassandra was behind as a
// queue drop.
func heartbeatCounters(c *collector.Counters) heartbeat.Counters {
	return heartbeat.Counters{
		RecordsIn:    c.Records.Load(),
		RecordsOut:   c.FlowsWritten.Load(),
		FlowsWritten: c.FlowsWritten.Load(),
		DecodeErrors: c.TemplateErrors.Load() + c.Malformed.Load(),
		SequenceGaps: c.SequenceGaps.Load(),
		SinkErrors:   c.WriteErrors.Load(),
		Drops:        heartbeat.Drops{SensorQueue: c.FlowsDropped.Load()},
		Exporters:    c.Exporters.Load(),
	}
}
