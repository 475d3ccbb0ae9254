package sensor

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// MaxSnapLen is the largest snap length accepted, libpcap's and tcpdump's.
const MaxSnapLen = 262144

// tpacketOverhead is the most a TPACKET_V3 ring adds to a packet (its header and alignment): a block
// must hold at least one whole packet with it; a block size that is no multiple of the page is refused.
const tpacketOverhead = 128

// Config is everything `capfleet sensor` is told by its flags and environment.
type Config struct {
	Interfaces      []string
	Filter          string
	SnapLen         int
	SampleRate      int
	RingBlockSizeKB int
	RingBlocks      int
	FanoutGroup     int
	FanoutWorkers   int
	Promisc         bool
	ExcludeKafka    bool
	Topic           string
	BufferPackets   int
	BufferMB        int
	Compression     string
	MetricsAddr     string
	HealthAddr      string
	NetNS           string
	StartTimeout    time.Duration
	FlushTimeout    time.Duration
	Node            string
	MemoryLimit     int64 // the container's, in bytes (0: none known): the rings must fit it
	Kafka           kafkaconn.Config

	// kafkaOpts are appended to the producer's options (tests cut the
	// connection to the broker through a dialer of their own).
	kafkaOpts []kgo.Opt
}

// DefaultConfig is the configuration the flags start from. Node comes from
// NODE_NAME, which the operator sets from the pod's spec.nodeName.
func DefaultConfig() Config {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	return Config{
		Interfaces:      []string{"eth0"},
		SnapLen:         MaxSnapLen,
		SampleRate:      1,
		RingBlockSizeKB: 0, // sized with the ring (ringsize.go)
		RingBlocks:      0, // sized from the interface's speed (ringsize.go)
		Promisc:         true,
		ExcludeKafka:    true,
		BufferPackets:   50000,
		BufferMB:        64,
		Compression:     "lz4",
		MetricsAddr:     ":9090",
		HealthAddr:      ":9091",
		StartTimeout:    30 * time.Second,
		FlushTimeout:    10 * time.Second,
		Node:            node,
		MemoryLimit:     memoryLimitFromEnv(),
		Kafka:           kafkaconn.Config{Brokers: []string{kafkaconn.DefaultBrokers}},
	}
}

// AddFlags registers the sensor's flags and the Kafka connection flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Interfaces, "interfaces", c.Interfaces, "interfaces to capture on, comma-separated; \"any\" alone captures every interface (Linux cooked v2 framing, as tcpdump -i any)")
	fs.StringVar(&c.Filter, "filter", c.Filter, `BPF filter in tcpdump syntax, run in the kernel ("" captures everything)`)
	fs.IntVar(&c.SnapLen, "snaplen", c.SnapLen, "bytes kept of each packet")
	fs.IntVar(&c.SampleRate, "sample-rate", c.SampleRate, "keep 1 packet of every N captured (1 keeps all)")
	fs.IntVar(&c.RingBlockSizeKB, "ring-block-size-kb", c.RingBlockSizeKB, "size of one AF_PACKET ring block in KiB (a multiple of the page size, larger than --snaplen); 0 sizes it with the ring: a fifth of a ring sized from the interface's speed, 1 to 4 MiB, or 1 MiB when --ring-blocks is given")
	fs.IntVar(&c.RingBlocks, "ring-blocks", c.RingBlocks, "number of blocks in each ring; 0 sizes the ring from the interface's speed (16 ms of line rate, scaled by --snaplen, 8 to 64 MiB)")
	fs.IntVar(&c.FanoutGroup, "fanout-group", c.FanoutGroup, "PACKET_FANOUT group id (0 = off): several rings on each interface, flows hashed across them; interface i uses id+i")
	fs.IntVar(&c.FanoutWorkers, "fanout-workers", c.FanoutWorkers, "rings (each read by its own goroutine) per interface in a fanout group; 0 = one per CPU")
	fs.BoolVar(&c.Promisc, "promisc", c.Promisc, "put the interfaces in promiscuous mode while capturing, as tcpdump does (--promisc=false: only traffic to this host)")
	fs.BoolVar(&c.ExcludeKafka, "exclude-kafka", c.ExcludeKafka, "leave TCP to and from the Kafka brokers out of the capture, so the sensor does not capture its own produce traffic")
	fs.StringVar(&c.Topic, "topic", c.Topic, "Kafka topic for the packets")
	fs.IntVar(&c.BufferPackets, "buffer-packets", c.BufferPackets, "packets held for Kafka at most; when full, capture waits (the ring holds packets) and sheds, counted, only once Kafka frees nothing for 0.5 s")
	fs.IntVar(&c.BufferMB, "buffer-mb", c.BufferMB, "bytes (MiB) held for Kafka at most, as --buffer-packets")
	fs.StringVar(&c.Compression, "compression", c.Compression, "Kafka batch compression: lz4, zstd, snappy, gzip or none (none: the least CPU, the sensor's and the broker's, for about twice the bytes)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, `address serving Prometheus /metrics ("" = off)`)
	fs.StringVar(&c.HealthAddr, "health-addr", c.HealthAddr, `address serving /healthz and /readyz ("" = off)`)
	fs.StringVar(&c.NetNS, "netns", c.NetNS, "capture inside this network namespace (/var/run/netns/NAME or /proc/PID/ns/net); Kafka is reached from the sensor's own")
	fs.DurationVar(&c.StartTimeout, "kafka-start-timeout", c.StartTimeout, "how long to wait for Kafka at start before giving up")
	fs.DurationVar(&c.FlushTimeout, "flush-timeout", c.FlushTimeout, "how long a stopping sensor waits for Kafka to take its buffer; what is left is counted as failed")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "the container's memory limit in bytes (default $"+MemoryLimitEnv+", which the operator sets from the pod's limit; 0: none): rings sized from the interface shrink to fit it with --buffer-mb, rings of a given size that do not fit are refused, and Go's heap is kept under what the rings leave")
	c.Kafka.AddFlags(fs)
}

// validate checks the flags against each other. Errors name the flag.
func (c *Config) validate() error {
	seen := map[string]bool{}
	for _, i := range c.Interfaces {
		if i == "" || seen[i] {
			return fmt.Errorf("--interfaces %q: empty or repeated interface name", c.Interfaces)
		}
		seen[i] = true
	}
	blockSize := c.RingBlockSizeKB * 1024
	switch {
	case len(c.Interfaces) == 0:
		return fmt.Errorf("--interfaces: none given")
	case seen[AnyInterface] && len(c.Interfaces) > 1:
		return fmt.Errorf("--interfaces %q: %s already captures every interface; give it alone", c.Interfaces, AnyInterface)
	case c.SnapLen < 1 || c.SnapLen > MaxSnapLen:
		return fmt.Errorf("--snaplen %d: want 1 to %d", c.SnapLen, MaxSnapLen)
	case c.SampleRate < 1:
		return fmt.Errorf("--sample-rate %d: want 1 or more", c.SampleRate)
	case c.RingBlockSizeKB != 0 && (c.RingBlockSizeKB < 4 || blockSize%os.Getpagesize() != 0):
		return fmt.Errorf("--ring-block-size-kb %d: want 0 (sized with the ring) or a multiple of the %d-byte page", c.RingBlockSizeKB, os.Getpagesize())
	case c.RingBlockSizeKB != 0 && blockSize < c.SnapLen+tpacketOverhead:
		return fmt.Errorf("--ring-block-size-kb %d: a block must hold one packet of --snaplen %d bytes", c.RingBlockSizeKB, c.SnapLen)
	case c.RingBlocks < 0:
		return fmt.Errorf("--ring-blocks %d: want 0 (sized from the interface's speed) or more", c.RingBlocks)
	case c.FanoutWorkers < 0 || c.FanoutWorkers > maxFanoutWorkers:
		return fmt.Errorf("--fanout-workers %d: want 0 (one per CPU) to %d", c.FanoutWorkers, maxFanoutWorkers)
	case c.FanoutGroup < 0 || c.FanoutGroup+len(c.Interfaces)-1 > 0xffff:
		return fmt.Errorf("--fanout-group %d: want 0 (off) or an id up to %d", c.FanoutGroup, 0x10000-len(c.Interfaces))
	case c.Topic == "":
		return fmt.Errorf("--topic: required")
	case c.BufferPackets < 1:
		return fmt.Errorf("--buffer-packets %d: want 1 or more", c.BufferPackets)
	case c.BufferMB < 1:
		return fmt.Errorf("--buffer-mb %d: want 1 or more", c.BufferMB)
	case c.MemoryLimit < 0:
		return fmt.Errorf("--memory-limit %d: want 0 (none) or bytes", c.MemoryLimit)
	case c.StartTimeout <= 0:
		return fmt.Errorf("--kafka-start-timeout %v: want a positive duration", c.StartTimeout)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		return err
	}
	return nil
}

// maxFanoutWorkers bounds --fanout-workers: the kernel's PACKET_FANOUT group holds up to 256 sockets
// (PACKET_FANOUT_MAX in older kernels).
const maxFanoutWorkers = 256

// ringsPerInterface is 1, or --fanout-workers (one per CPU by default) when a fanout group spreads the
// interface's traffic across rings.
func (c *Config) ringsPerInterface() int {
	switch {
	case c.FanoutGroup == 0:
		return 1
	case c.FanoutWorkers > 0:
		return c.FanoutWorkers
	}
	return runtime.GOMAXPROCS(0)
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want lz4, zstd, snappy, gzip or none", name)
}
