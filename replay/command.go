package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/linktype"
)

// options are the flags shared by `capfleet replay` and `capfleet pcap replay`.
type options struct {
	file        string
	url         string
	sha256      string
	maxDownload int64
	pace        PaceFlags
	loop        int
	limit       uint64
	iface       string
	topic       string
	topicFlag   string // --topic or --to-topic, for messages
	metricsAddr string
	kafka       kafkaconn.Config
	createTopic int32
	cpuProfile  string // hidden: a Go CPU profile of the whole run, for go tool pprof

	// onStart, when set, is called once the run is about to send; the
	// returned func is called when it has ended (the terminal's progress bar).
	onStart func(r *Replayer) func()
}

// NewCommand is `capfleet replay`, the workload of a ReplayJob.
func NewCommand() *cobra.Command {
	o := &options{topicFlag: "--topic"}
	hb := heartbeat.DefaultConfig(heartbeat.KindReplayJob)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay a capture file onto an interface or into a packets topic, paced like tcpreplay",
		Long: `Replay a pcap or pcapng file (plain or gzip) from a local path (a ConfigMap, Secret or
PersistentVolumeClaim mount is a path) or from an HTTP(S) URL checked against a SHA-256 before a packet
is sent, onto a network interface (AF_PACKET) or into a packets topic (one record per packet).
Pacing: --multiplier (the capture's timing, sped up; default 1), --pps, --mbps or --top-speed.
Progress is served on --metrics-addr /metrics; a tcpreplay-like summary is printed at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.pace.changed(cmd.Flags())
			if err := hb.Validate(); err != nil { // heartbeats: progress to the operator's stats topic
				return err
			}
			o.onStart = heartbeatOnStart(hb, o.kafka, o.onStart)
			// A replay that fails says why in a heartbeat as well as in its exit.
			return workload.ReportFailure(hb, o.kafka, o.run(cmd.Context(), cmd.OutOrStdout()), nil)
		},
	}
	fs := cmd.Flags()
	hb.AddFlags(fs)
	fs.StringVar(&o.file, "file", "", "capture file to replay (pcap or pcapng, plain or gzip)")
	fs.StringVar(&o.url, "url", "", "HTTP(S) URL of the capture file to replay (needs --sha256)")
	fs.StringVar(&o.sha256, "sha256", "", "SHA-256 (hex) the capture must have; required with --url, checked before sending")
	fs.Int64Var(&o.maxDownload, "max-download-bytes", DefaultMaxDownload, "largest capture accepted from --url")
	fs.StringVar(&o.topic, "topic", "", "packets topic to produce to")
	fs.StringVar(&o.metricsAddr, "metrics-addr", ":9090", "address of the Prometheus /metrics endpoint (empty: off)")
	o.addCommonFlags(fs)
	return cmd
}

// NewPcapCommand is `capfleet pcap replay FILE`, the same replayer from a terminal.
func NewPcapCommand() *cobra.Command {
	o := &options{topicFlag: "--to-topic"}
	cmd := &cobra.Command{
		Use:   "replay FILE --to-topic TOPIC | --interface IF",
		Short: "Replay a capture file onto an interface or into a packets topic, like tcpreplay",
		Long: `Replay a pcap or pcapng file (plain or gzip) with the same engine as the ReplayJob's
"capfleet replay": a progress bar while it runs when the output is a terminal, tcpreplay's summary at the end.`,
		Example: `  capfleet pcap replay trace.pcap --to-topic packets --pps 2000 --loop 3
  capfleet pcap replay trace.pcapng.gz --interface veth0 --multiplier 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pace.changed(cmd.Flags())
			o.file = args[0]
			out := cmd.OutOrStdout()
			if isTerminal(out) {
				o.onStart = progressBar(cmd.ErrOrStderr())
			}
			return o.run(cmd.Context(), out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.topic, "to-topic", "", "packets topic to produce to")
	fs.StringVar(&o.sha256, "sha256", "", "SHA-256 (hex) the file must have, checked before sending")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "address of a Prometheus /metrics endpoint (empty: off)")
	fs.Int32Var(&o.createTopic, "create-topic", 0, "create --to-topic with this many partitions when it does not exist (0: it must exist)")
	o.addCommonFlags(fs)
	return cmd
}

func (o *options) addCommonFlags(fs *pflag.FlagSet) {
	fs.Float64Var(&o.pace.Multiplier, "multiplier", 1, "replay at the capture's own timing divided by this factor (2 = twice as fast)")
	fs.Float64Var(&o.pace.PPS, "pps", 0, "replay at this many packets per second")
	fs.Float64Var(&o.pace.Mbps, "mbps", 0, "replay at this many megabits (10^6 bits) of frames per second")
	fs.BoolVar(&o.pace.TopSpeed, "top-speed", false, "replay as fast as the target takes packets")
	fs.IntVar(&o.loop, "loop", 1, "passes over the file; 0 repeats until stopped")
	fs.Uint64Var(&o.limit, "limit", 0, "stop after this many packets in total (0: no limit)")
	fs.StringVar(&o.iface, "interface", "", "network interface to send the frames on (needs CAP_NET_RAW)")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write a Go CPU profile of the whole run to this file (for `go tool pprof`)")
	_ = fs.MarkHidden("cpu-profile")
	o.kafka.AddFlags(fs)
}

// changed records which pacing flags the user gave, as opposed to defaults.
func (f *PaceFlags) changed(fs *pflag.FlagSet) {
	f.MultiplierSet = fs.Changed("multiplier")
	f.PPSSet = fs.Changed("pps")
	f.MbpsSet = fs.Changed("mbps")
}

func (o *options) run(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	pace, err := o.pace.Pace()
	if err != nil {
		return err
	}
	if err := o.checkTarget(); err != nil {
		return err
	}
	if o.loop < 0 {
		return fmt.Errorf("--loop %d: must be 0 (forever) or more", o.loop)
	}
	path, cleanup, err := o.source(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	target, err := o.openTarget(ctx)
	if err != nil {
		return err
	}
	defer target.Close()
	cfg := Config{Open: OpenFile(path), Pace: pace, Loops: o.loop, Limit: o.limit, Target: target}
	if o.iface != "" {
		cfg.LinkTypes = []linktype.Type{linktype.Ethernet}
	}
	r, err := New(cfg)
	if err != nil {
		return err
	}
	if err := r.Scan(); err != nil {
		return o.fromSource(err)
	}
	if o.metricsAddr != "" {
		reg := prometheus.NewRegistry()
		if err := r.Register(reg); err != nil {
			return err
		}
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if _, err := ServeMetrics(mctx, o.metricsAddr, reg); err != nil {
			return err
		}
	}
	endBar := func() {}
	if o.onStart != nil {
		endBar = o.onStart(r)
	}
	sum, err := r.Run(ctx)
	endBar() // the bar is finished before the summary is printed under it
	fmt.Fprint(out, sum)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("replay stopped by a signal before the end")
		}
		return o.fromSource(err)
	}
	if sum.PacketsSent == 0 && sum.PacketsFailed > 0 {
		return fmt.Errorf("no packet could be sent to %s: %w", target, sum.FirstFailure)
	}
	return nil
}

func (o *options) checkTarget() error {
	switch {
	case o.iface != "" && o.topic != "":
		return fmt.Errorf("give either --interface or %s, not both", o.topicFlag)
	case o.iface == "" && o.topic == "":
		return fmt.Errorf("nowhere to replay to: give --interface IF or %s TOPIC", o.topicFlag)
	}
	return nil
}

// fromSource says which URL a downloaded capture came from: its errors name a temporary file.
func (o *options) fromSource(err error) error {
	switch {
	case o.url != "":
		return fmt.Errorf("%s (downloaded): %w", redact(o.url), err)
	case errors.Is(err, ErrNoPackets):
		return fmt.Errorf("capture file %s: %w", o.file, err)
	}
	return err
}

// source returns the path of a verified local capture, downloading it first
// for --url; cleanup removes a download.
func (o *options) source(ctx context.Context) (string, func(), error) {
	none := func() {}
	switch {
	case o.file != "" && o.url != "":
		return "", none, errors.New("give either --file or --url, not both")
	case o.url != "":
		if o.sha256 == "" {
			return "", none, errors.New("--url needs --sha256: a downloaded capture is only replayed once its digest matches")
		}
		max := o.maxDownload
		if max <= 0 {
			max = DefaultMaxDownload
		}
		path, err := Fetch(ctx, o.url, o.sha256, max, "")
		if err != nil {
			return "", none, err
		}
		return path, func() { os.Remove(path) }, nil
	case o.file != "":
		if _, err := os.Stat(o.file); err != nil {
			return "", none, fmt.Errorf("capture file: %w", err)
		}
		if o.sha256 != "" {
			if err := VerifyFile(o.file, o.sha256); err != nil {
				return "", none, err
			}
		}
		return o.file, none, nil
	}
	return "", none, errors.New("nothing to replay: give --file PATH, or --url URL with --sha256")
}

func (o *options) openTarget(ctx context.Context) (Target, error) {
	if o.iface != "" {
		return OpenInterface(o.iface)
	}
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	return OpenTopic(ctx, o.kafka, o.topic, TopicOptions{Node: node, Interface: "replay", CreatePartitions: o.createTopic})
}
