package query

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/store"
)

// query packets -Y keeps the packets tshark -Y keeps when it reads the same export made without
// the filter: the stored packets of two real captures are exported whole, then with each filter,
// and every filtered export must be exactly tshark's choice out of the whole one.
func TestQueryPacketsDisplayFilterMatchesTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		testenv.Missing(t, "tshark not installed: run bash hack/deps.sh")
	}
	ccfg, ks, s := migratedKeyspace(t)
	ctx := context.Background()
	var pkts []store.Packet
	for _, name := range []string{"http.pcap", "dns.pcap"} {
		r, err := pcapfile.Open(filepath.Join(testenv.Root(t), "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, store.Packet{Sensor: "df", Timestamp: p.Timestamp, Offset: int64(len(pkts)), Node: "n1", Interface: "eth0",
				LinkType: uint32(p.LinkType), Data: bytes.Clone(p.Data), OrigLen: p.Length})
		}
		r.Close()
	}
	if err := store.NewWriter(s, store.Options{}).WriteBlocks(ctx, blocksOf("df", pkts), 0); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port),
		"--cassandra-secret-dir", ccfg.SecretDir, "--sensor", "df", "--from", "2014-01-01T00:00:00Z", "--to", "2018-01-01T00:00:00Z"}
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.pcap")
	if _, err := run(append([]string{"packets", "-w", whole}, conn...)...); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{
		"tcp.flags.syn == 1",
		"ip.addr == 10.1.1.0/24 && tcp.len > 0",
		`dns.qry.name matches "\\.ru$" && ip.ttl < 60`,
		"frame.number in {2..5, 15} || udp.srcport > udp.dstport",
		"!tcp && frame.len > 80",
	} {
		out := filepath.Join(dir, "f"+strconv.Itoa(i)+".pcap")
		if _, err := run(append([]string{"packets", "-w", out, "-Y", f}, conn...)...); err != nil {
			t.Fatalf("-Y %q: %v", f, err)
		}
		want, err := exec.Command(tshark, "-n", "-r", whole, "-Y", f, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len").Output()
		if err != nil {
			t.Fatalf("tshark -Y %q: %v", f, err)
		}
		got, err := exec.Command(tshark, "-n", "-r", out, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len").Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", out, err)
		}
		if len(want) == 0 || string(got) != string(want) {
			t.Errorf("-Y %q exported\n%s\ntshark -Y keeps\n%s", f, got, want)
		}
	}
	if _, err := run(append([]string{"packets", "-w", filepath.Join(dir, "x.pcap"), "-Y", "tcp.port == 70000"}, conn...)...); err == nil ||
		!strings.Contains(err.Error(), "column 13") {
		t.Errorf("a bad -Y: %v, want an error naming column 13", err)
	}
}
