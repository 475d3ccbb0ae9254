package sensor

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/workload"
)

// NewCommand is `capfleet sensor`, the CaptureSensor DaemonSet's workload.
func NewCommand() *cobra.Command {
	cfg := DefaultConfig()
	hb := heartbeat.DefaultConfig(heartbeat.KindCaptureSensor)
	cmd := &cobra.Command{
		Use:   "sensor",
		Short: "Capture packets on this node's interfaces and publish them to Kafka",
		Long: `Captures on AF_PACKET TPACKET_V3 rings, filters in the kernel with a BPF program compiled
from tcpdump syntax, and publishes one Kafka record per packet (Apache Metron's raw-packet
convention, partitioned by a symmetric 5-tuple hash). Kafka credentials are read only from
files in --kafka-secret-dir. NODE_NAME names the node in every record.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			// A sensor that cannot capture says why in its last heartbeat as well as in its exit.
			fail := func(err error) error { return workload.ReportFailure(hb, cfg.Kafka, err, log) }
			s, err := New(cfg, log)
			if err != nil {
				return fail(fmt.Errorf("sensor: %w", err))
			}
			stopBeats, err := startHeartbeat(hb, cfg, s, log) // counters to the operator's stats topic
			if err != nil {
				return fmt.Errorf("sensor: heartbeat: %w", err)
			}
			defer stopBeats()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := s.Run(ctx); err != nil {
				stopBeats()
				return fail(fmt.Errorf("sensor: %w", err))
			}
			return nil
		},
	}
	cfg.AddFlags(cmd.Flags())
	hb.AddFlags(cmd.Flags())
	return cmd
}
