package query

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/block"
	"capfleet.dev/capfleet/processor/store"
)

// Packets of two link types come back as pcapng, each with its own link type, byte for byte, in
// timestamp order; tshark opens the file. Asking for plain pcap is refused with the reason.
func TestQueryPacketsMixedLinkTypesWritesPcapng(t *testing.T) {
	ccfg, ks, s := migratedKeyspace(t)
	ctx := context.Background()
	// An Ethernet frame and a raw IPv4 packet (the same UDP datagram), alternating.
	ipv4 := []byte{0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0x30, 0x39, 0, 53, 0, 9, 0, 0, 0x61}
	eth := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}, ipv4...)
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	var pkts []store.Packet
	for i := range 6 {
		p := store.Packet{Sensor: "mixed", Timestamp: base.Add(time.Duration(i)*time.Second + 123456789), Partition: 0, Offset: int64(i),
			Node: "n1", Interface: "eth0", LinkType: 1, Data: eth, OrigLen: len(eth)}
		if i%2 == 1 {
			p.Interface, p.LinkType, p.Data, p.OrigLen = "tun0", 101, ipv4, len(ipv4)
		}
		pkts = append(pkts, p)
	}
	if err := store.NewWriter(s, store.Options{}).WriteBlocks(ctx, blocksOf("mixed", pkts), time.Hour); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port),
		"--cassandra-secret-dir", ccfg.SecretDir, "--sensor", "mixed", "--from", "2024-03-01T10:00:00Z", "--to", "2024-03-01T10:01:00Z"}
	out := filepath.Join(t.TempDir(), "mixed.pcapng")
	if _, err := run(append([]string{"packets", "-w", out}, conn...)...); err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !strings.HasPrefix(r.Format(), "pcapng") {
		t.Fatalf("format %s, want pcapng", r.Format())
	}
	for i := 0; ; i++ {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			if i != len(pkts) {
				t.Fatalf("%d packets in the file, want %d", i, len(pkts))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w := pkts[i]
		if !p.Timestamp.Equal(w.Timestamp) || uint32(p.LinkType) != uint32(w.LinkType) || !bytes.Equal(p.Data, w.Data) {
			t.Fatalf("packet %d: %s lt %d %x, want %s lt %d %x", i, p.Timestamp, p.LinkType, p.Data, w.Timestamp, w.LinkType, w.Data)
		}
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		got, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name", "-e", "udp.dstport").Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", out, err)
		}
		want := strings.Repeat("n1:eth0\t53\nn1:tun0\t53\n", 3)
		if string(got) != want {
			t.Fatalf("tshark reads\n%s\nwant\n%s", got, want)
		}
	}
	if _, err := run(append([]string{"packets", "--format", "pcap", "-w", filepath.Join(t.TempDir(), "x.pcap")}, conn...)...); err == nil ||
		!strings.Contains(err.Error(), "pcapng") {
		t.Fatalf("--format pcap over two link types: %v, want an error pointing to pcapng", err)
	}
}

// blocksOf packs packets into blocks, one Kafka partition's run at a time, as the pipeline stores them.
func blocksOf(sensor string, pkts []store.Packet) []store.Block {
	var out []store.Block
	b := block.NewBuilder(block.Limits{})
	var lts []uint32
	seal := func(part int32) {
		out = append(out, store.NewBlock(sensor, part, b.Seal(), lts))
		lts = nil
	}
	for i, p := range pkts {
		bp := block.Packet{Offset: p.Offset, Timestamp: p.Timestamp.UnixNano(), OrigLen: p.OrigLen, LinkType: p.LinkType,
			Node: p.Node, Interface: p.Interface, Data: p.Data}
		if b.Len() > 0 && (b.Full(&bp) || p.Partition != pkts[i-1].Partition) {
			seal(pkts[i-1].Partition)
		}
		b.Add(&bp)
		if !slices.Contains(lts, p.LinkType) {
			lts = append(lts, p.LinkType)
		}
	}
	if b.Len() > 0 {
		seal(pkts[len(pkts)-1].Partition)
	}
	return out
}

func run(args ...string) (string, error) {
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// migratedKeyspace is a new keyspace with capfleet's schema on the Cassandra of hack/cassandra.sh, its
// connection settings and a session on it that the test's end closes.
func migratedKeyspace(t *testing.T) (cassconn.Config, string, *gocql.Session) {
	t.Helper()
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	cl, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background(), cl, ks, store.DefaultReplication); err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return ccfg, ks, s
}
