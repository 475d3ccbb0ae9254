package replay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
)

// filePacket is a packet of a capture as the test reads it, for comparison.
type filePacket struct {
	ts     time.Time
	length int
	data   []byte
}

func readFile(t *testing.T, path string) []filePacket {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []filePacket
	for {
		p, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatal(err)
		}
		out = append(out, filePacket{p.Timestamp, p.Length, append([]byte(nil), p.Data...)})
	}
}

// consumeAll reads every record of topic, per partition in offset order,
// up to the end offsets the broker reports once the producer has finished.
func consumeAll(t *testing.T, cfg kafkaconn.Config, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm, err := cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		total += o.Offset
	})
	got := map[int32][]*kgo.Record{}
	if total == 0 {
		return got
	}
	cl, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := int64(0)
	for n < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", n, total, err)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			n++
		})
	}
	return got
}

// checkTopicHolds fails unless the topic holds exactly the file's packets
// loops times, each partition in file order, each record in the sensor's
// format with the file's timestamp and original length.
func checkTopicHolds(t *testing.T, cfg kafkaconn.Config, topic string, partitions int, file []filePacket, loops int) {
	t.Helper()
	want := map[int32][]filePacket{}
	for range loops {
		for _, p := range file {
			rec := packetrecord.Encode(packetrecord.Meta{Timestamp: p.ts, LinkType: 1, OrigLen: p.length}, p.data)
			part := int32(packetrecord.Partition(rec, partitions))
			want[part] = append(want[part], p)
		}
	}
	got := consumeAll(t, cfg, topic)
	total := 0
	for part, recs := range got {
		total += len(recs)
		w := want[part]
		if len(recs) != len(w) {
			t.Errorf("partition %d holds %d records, want %d", part, len(recs), len(w))
			continue
		}
		for i, r := range recs {
			m, frame, err := packetrecord.Decode(r)
			if err != nil {
				t.Fatal(err)
			}
			at := fmt.Sprintf("partition %d record %d", part, i)
			if !bytes.Equal(frame, w[i].data) {
				t.Fatalf("%s: frame of %d bytes differs from the file's packet (%d bytes)", at, len(frame), len(w[i].data))
			}
			if !m.Timestamp.Equal(w[i].ts) {
				t.Fatalf("%s: capture time %s, file says %s", at, m.Timestamp.Format(time.RFC3339Nano), w[i].ts.Format(time.RFC3339Nano))
			}
			if k := binary.BigEndian.Uint64(r.Key); k != uint64(w[i].ts.UnixMicro()) {
				t.Fatalf("%s: key %d, want the file's microseconds %d", at, k, w[i].ts.UnixMicro())
			}
			if m.OrigLen != w[i].length || m.LinkType != 1 || m.Interface != "replay" {
				t.Fatalf("%s: meta %+v, want origlen %d, Ethernet, iface replay", at, m, w[i].length)
			}
		}
	}
	if total != loops*len(file) {
		t.Fatalf("topic holds %d records, want %d", total, loops*len(file))
	}
}

func TestReplayIntoTopic(t *testing.T) {
	cfg := kafkatest.Plain(t)
	for _, c := range []struct {
		file  string
		loops int
	}{
		{"ndpi/teamviewer.pcap", 1},
		{"zeek/tcp/timestamp.pcap", 2}, // most records truncated by the capture
		{"ndpi/stun_google_meet.pcapng", 1},
	} {
		t.Run(c.file, func(t *testing.T) {
			const partitions = 3
			path := sharedPcap(t, c.file)
			file := readFile(t, path)
			if n := tcpdumpCount(t, path); n != len(file) {
				t.Fatalf("tcpdump reads %d packets, pcapfile %d", n, len(file))
			}
			topic := kafkatest.NewTopic(t, cfg, partitions)
			out := replayCommand(t, NewCommand(), "--file", path, "--topic", topic, "--top-speed",
				"--loop", strconv.Itoa(c.loops), "--metrics-addr", "", "--kafka-brokers", strings.Join(cfg.Brokers, ","))
			if !strings.Contains(out, fmt.Sprintf("Actual: %d packets", c.loops*len(file))) {
				t.Fatalf("summary:\n%s", out)
			}
			checkTopicHolds(t, cfg, topic, partitions, file, c.loops)
		})
	}
}

// replayCommand runs a replay command in-process and returns its output; the command must succeed.
func replayCommand(t *testing.T, cmd *cobra.Command, args ...string) string {
	t.Helper()
	out, err := execute(cmd, args...)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	t.Logf("replay %s\n%s", strings.Join(args, " "), out)
	return out
}

func execute(cmd *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// The producer reaches the broker's TLS + SCRAM listener with credentials
// read from the mounted secret directory, and a wrong password is a clear error.
func TestReplayIntoTopicOverTLSAndSCRAM(t *testing.T) {
	plain := kafkatest.Plain(t)
	secure := kafkatest.Secure(t)
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	topic := kafkatest.NewTopic(t, plain, 2)
	args := []string{"--file", path, "--topic", topic, "--top-speed", "--metrics-addr", "",
		"--kafka-brokers", strings.Join(secure.Brokers, ","), "--kafka-tls"}
	replayCommand(t, NewCommand(), append(args, "--kafka-secret-dir", secure.SecretDir)...)
	checkTopicHolds(t, plain, topic, 2, readFile(t, path), 1)

	wrong := t.TempDir()
	for _, f := range []string{kafkaconn.FileCA, kafkaconn.FileMechanism, kafkaconn.FileUsername} {
		b, err := os.ReadFile(filepath.Join(secure.SecretDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wrong, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(wrong, kafkaconn.FilePassword), []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := execute(NewCommand(), append(args, "--kafka-secret-dir", wrong)...)
	t.Logf("wrong password: %v", err)
	if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("error %v, want an authentication failure\n%s", err, out)
	}
	if strings.Contains(err.Error()+out, "not-the-password") {
		t.Fatal("the password leaked into the message")
	}
}

// Paced into a topic, records reach the producer at the asked rate: their
// timestamps (the producer's create time, set as each record is handed over)
// span the run as 2,000 packets/s would.
func TestReplayIntoTopicHoldsFixedRate(t *testing.T) {
	const pps, n = 2000, 10001
	cfg := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, cfg, 3)
	replayCommand(t, NewCommand(), "--file", sharedPcap(t, "zeek/echo-connections.pcap"), "--topic", topic,
		"--pps", strconv.Itoa(pps), "--limit", strconv.Itoa(n), "--metrics-addr", "", "--kafka-brokers", strings.Join(cfg.Brokers, ","))
	var first, last time.Time
	count := 0
	for _, recs := range consumeAll(t, cfg, topic) {
		for _, r := range recs {
			if first.IsZero() || r.Timestamp.Before(first) {
				first = r.Timestamp
			}
			if r.Timestamp.After(last) {
				last = r.Timestamp
			}
			count++
		}
	}
	if count != n {
		t.Fatalf("topic holds %d records, want %d", count, n)
	}
	rate := float64(n-1) / last.Sub(first).Seconds()
	t.Logf("achieved %.1f records/s over %v (record timestamps, ms resolution)", rate, last.Sub(first))
	if math.Abs(rate-pps)/pps > 0.05 {
		t.Fatalf("achieved %.1f records/s, want %d within 5%%", rate, pps)
	}
}
