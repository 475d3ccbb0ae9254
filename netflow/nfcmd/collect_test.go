package nfcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/heartbeat"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/store"
	"capfleet.dev/capfleet/query"
)

// TestCollectStoresWhatNfdumpShows runs `capfleet collect` against the shared Cassandra while softflowd
// exports two captures as v5, v9 and IPFIX to it and to nfcapd at once. After each export the flows
// stored (read back through the store, as `query flows` reads them) are the flows nfdump prints, and
// at the end the collector's sequence error count is nfcapd's, its final heartbeat (what a FlowCollector's status
// is made of) carries what its /metrics say, and `query flows` answers for the exporter.
func TestCollectStoresWhatNfdumpShows(t *testing.T) {
	needTools(t, "softflowd", "nfcapd", "nfdump")
	kcfg := kafkatest.Plain(t)
	stats := kafkatest.NewTopic(t, kcfg, 1)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	_, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
	metrics := testenv.FreeAddr(t)
	conn := []string{"--keyspace", ks, "--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port),
		"--cassandra-secret-dir", ccfg.SecretDir}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := NewCollectCommand()
	var logs syncBuffer
	cmd.SetOut(&logs)
	cmd.SetErr(&logs)
	// As a FlowCollector's pod runs it: heartbeats to the stats topic.
	cmd.SetArgs(append([]string{"--listen", "127.0.0.1:" + port, "--metrics-addr", metrics, "--health-addr", "", "--flush-interval", "200ms",
		"--kafka-brokers", strings.Join(kcfg.Brokers, ","), "--stats-topic", stats, "--heartbeat-interval", "200ms",
		"--resource-namespace", "netflow", "--resource-name", "routers"}, conn...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("collect: %v\n%s", err, logs.String())
			}
		}
	}
	t.Cleanup(stop)
	scrape := func() map[string]float64 {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]float64{}
		for _, l := range regexp.MustCompile(`(?m)^(capfleet_collect_\w+) (\S+)$`).FindAllStringSubmatch(string(b), -1) {
			m[l[1]], _ = strconv.ParseFloat(l[2], 64)
		}
		return m
	}
	for deadline := time.Now().Add(60 * time.Second); scrape() == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("collect did not serve metrics: %s", logs.String())
		}
	}

	cl, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	session, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	reader := store.NewReader(session)
	// softflowd reading a file makes up flow times up to weeks away from now.
	from, to := time.Now().Add(-120*24*time.Hour), time.Now().Add(120*24*time.Hour)
	seen := map[string]bool{}
	var wantSeqErrors uint64
	records := 0.0
	for _, capture := range oracleCaptures(t) {
		for _, version := range []int{5, 9, 10} {
			name := fmt.Sprintf("%s/v%d", filepath.Base(capture), version)
			nf := startNfcapd(t)
			softflowd(t, capture, version, nf.port, port)
			time.Sleep(time.Second) // for nfcapd to read what its socket holds before it stops
			nf.stop(t)
			theirs := nf.flows(t)
			wantSeqErrors += nf.sequenceErrors(t)
			records += float64(len(theirs))
			// Wait until the collector decoded and stored as many flows as nfcapd did.
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				m := scrape()
				if m["capfleet_collect_records_total"] >= records && m["capfleet_collect_flows_written_total"] == m["capfleet_collect_records_total"] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: collector metrics %v, want %v records written\n%s", name, m, records, logs.String())
				}
			}
			stored, err := reader.FlowsBetween(context.Background(), from, to)
			if err != nil {
				t.Fatal(err)
			}
			var ours []oracleFlow
			for _, f := range stored {
				if seen[f.UID] {
					continue
				}
				seen[f.UID] = true
				if f.Sensor != "netflow:127.0.0.1" || f.CommunityID == "" || !f.Closed || f.RespPkts != 0 || f.OrigBytes != 0 {
					t.Errorf("%s: stored flow %+v", name, f)
				}
				o := oracleFlow{start: f.Start.UnixMilli(), end: f.End.UnixMilli(), src: f.OrigAddr, dst: f.RespAddr,
					sport: f.OrigPort, dport: f.RespPort, proto: f.Proto, packets: f.OrigPkts, octects: f.OrigIPBytes}
				if f.Proto == 1 || f.Proto == 58 { // stored as Zeek has ICMP: type and code as the ports
					o.sport, o.dport = 0, f.OrigPort<<8|f.RespPort
				}
				ours = append(ours, o)
			}
			sameFlows(t, "collect "+name, version, ours, theirs)
		}
	}
	// One collector heard every export, where each nfcapd heard one: the second capture's softflowd
	// restarts each version's sequence at 0, one more error per version.
	wantSeqErrors += 3
	m := scrape()
	if m["capfleet_collect_sequence_errors_total"] != float64(wantSeqErrors) || m["capfleet_collect_template_errors_total"] != 0 ||
		m["capfleet_collect_malformed_total"] != 0 || m["capfleet_collect_exporters"] != 1 || m["capfleet_collect_flows_dropped_total"] != 0 {
		t.Errorf("metrics %v; nfcapd counted %d sequence errors", m, wantSeqErrors)
	}

	// The operator's view: the final heartbeat carries what /metrics says.
	stop()
	beat := finalBeat(t, kcfg, stats)
	if beat.Kind != heartbeat.KindFlowCollector || beat.Name != "routers" || float64(beat.Counters.RecordsIn) != m["capfleet_collect_records_total"] ||
		float64(beat.Counters.FlowsWritten) != m["capfleet_collect_flows_written_total"] || float64(beat.Counters.SequenceGaps) != m["capfleet_collect_sequence_gaps_total"] ||
		beat.Counters.SequenceGaps == 0 || beat.Counters.Exporters != 1 || beat.Counters.DecodeErrors != 0 {
		t.Errorf("final heartbeat %+v; metrics %v", beat, m)
	}

	// The analyst's view: `query flows` answers for the exporter's flows.
	q := query.NewCommand()
	var out bytes.Buffer
	q.SetOut(&out)
	q.SetErr(&out)
	q.SetArgs(append([]string{"flows", "--ip", "192.168.56.101", "--from", from.UTC().Format(time.RFC3339), "--to", to.UTC().Format(time.RFC3339)}, conn...))
	if err := q.Execute(); err != nil {
		t.Fatalf("query flows: %v\n%s", err, out.String())
	}
	// 30 FTP sessions, each a flow each way, in each of three exports.
	if n := strings.Count(out.String(), "192.168.56.101:21"); n != 180 {
		t.Errorf("query flows shows %d flows of the FTP server, want 180:\n%s", n, out.String())
	}
}

// finalBeat reads the stats topic up to the beat a stopping pod sends last.
func finalBeat(t *testing.T, kcfg kafkaconn.Config, topic string) heartbeat.Beat {
	t.Helper()
	cl, err := kcfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no final heartbeat on %s", topic)
		}
		var final *heartbeat.Beat
		fs.EachRecord(func(r *kgo.Record) {
			b, err := heartbeat.Decode(r.Value)
			if err != nil {
				t.Fatalf("heartbeat %q: %v", r.Value, err)
			}
			if b.Final {
				final = &b
			}
		})
		if final != nil {
			return *final
		}
	}
}
