package nfcmd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/processor/store"
)

// TestProcessExportsIPFIX: `capfleet process --ipfix` (the PacketPipeline's IPFIX sink) consumes a
// capture from Kafka, stores its flows and exports them to nfcapd; nfdump shows each stored flow as one
// record per direction that carried packets, with its packets, IP bytes and times.
func TestProcessExportsIPFIX(t *testing.T) {
	needTools(t, "nfcapd", "nfdump")
	kcfg := kafkatest.Plain(t)
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	frames := pipelinetest.ReadCapture(t, filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"))
	fcfg := pipeline.FlowConfig{IdleTimeout: 2 * time.Second, ActiveTimeout: 30 * time.Minute, MaxFlows: 1 << 20}
	want := pipelinetest.ExpectedFlows(t, frames, fcfg, "ipfix")
	var wantRecords []oracleFlow
	for i := range want {
		wantRecords = append(wantRecords, storedDirections(&want[i])...)
	}
	topic := kafkatest.NewTopic(t, kcfg, 2)
	pipelinetest.Produce(t, kcfg, topic, frames)
	nf := startNfcapd(t)

	metrics := testenv.FreeAddr(t)
	cmd := processcmd.NewCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--topic", topic, "--group", "ipfix-" + strconv.FormatInt(time.Now().UnixNano(), 36), "--sensor", "ipfix",
		"--store-flows", "--keyspace", ks, "--metrics-addr", metrics, "--health-addr", "", "--flow-idle-timeout", "2s",
		"--ipfix", "127.0.0.1:" + nf.port, "--ipfix-domain", "7",
		"--kafka-brokers", strings.Join(kcfg.Brokers, ","), "--cassandra-hosts", strings.Join(ccfg.Hosts, ","),
		"--cassandra-port", strconv.Itoa(ccfg.Port), "--cassandra-secret-dir", ccfg.SecretDir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("process: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	exported := regexp.MustCompile(`(?m)^capfleet_process_ipfix_records_exported_total (\S+)$`)
	pipelinetest.Eventually(t, 3*time.Minute, "every flow exported", func() (bool, string) {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := exported.FindStringSubmatch(string(b))
		if m == nil {
			return false, "no capfleet_process_ipfix_records_exported_total"
		}
		n, _ := strconv.Atoi(m[1])
		return n >= len(wantRecords), fmt.Sprintf("%d of %d records exported", n, len(wantRecords))
	})
	stop()
	time.Sleep(time.Second) // for nfcapd to read what its socket holds
	nf.stop(t)
	sameFlows(t, "nfdump of the pipeline's export", 0, nf.flows(t), wantRecords)
	if n := nf.sequenceErrors(t); n != 0 {
		t.Errorf("nfcapd counted %d sequence errors", n)
	}
}

// storedDirections are the records a stored flow is exported as.
func storedDirections(f *store.Flow) []oracleFlow {
	var out []oracleFlow
	base := oracleFlow{start: f.Start.UnixMilli(), end: f.End.UnixMilli(), proto: f.Proto}
	if f.OrigPkts > 0 {
		o := base
		o.src, o.dst, o.sport, o.dport, o.packets, o.octects = f.OrigAddr, f.RespAddr, f.OrigPort, f.RespPort, f.OrigPkts, f.OrigIPBytes
		out = append(out, o)
	}
	if f.RespPkts > 0 {
		o := base
		o.src, o.dst, o.sport, o.dport, o.packets, o.octects = f.RespAddr, f.OrigAddr, f.RespPort, f.OrigPort, f.RespPkts, f.RespIPBytes
		out = append(out, o)
	}
	return out
}
