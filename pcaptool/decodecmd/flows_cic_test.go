package decodecmd

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/flow"
)

// TestFlowsCICOutput: `--features cic -o csv` prints CIC-IDS2017's header and one row per flow, and
// `-o json` carries the same values under "cic"; csv without the features, or an unknown feature
// set, is refused.
func TestFlowsCICOutput(t *testing.T) {
	pcap := filepath.Join(testenv.Pcaps(t), "ndpi/gnutella.pcap")
	run := func(output string, features flow.Features) (string, error) {
		var out, errb bytes.Buffer
		o := &flowsOptions{output: output, activeTimeout: 30 * time.Minute, maxFlows: 1_000_000, features: features}
		err := runFlows(&out, &errb, pcap, o)
		return out.String(), err
	}
	text, err := run("csv", flow.FeaturesCIC)
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(text, "\n")
	if header != flow.CICHeader {
		t.Fatalf("header %q", header)
	}
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	js, err := run("json", flow.FeaturesCIC)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	for dec := json.NewDecoder(strings.NewReader(js)); dec.More(); {
		var r flow.Record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(rows)-1 != len(recs) || len(recs) < 100 {
		t.Fatalf("%d csv rows, %d json records", len(rows)-1, len(recs))
	}
	for i, r := range recs {
		row := rows[i+1]
		if r.CIC == nil || len(row) != len(rows[0]) || row[0] != r.CIC.FlowID() {
			t.Fatalf("record %d: cic %v, csv row %q", i, r.CIC, row)
		}
		for j, name := range flow.CICColumns {
			v, err := strconv.ParseFloat(row[7+j], 64)
			if err != nil || v != r.CIC.V[j] {
				t.Fatalf("flow %s, %s: csv %q, json %v", row[0], name, row[7+j], r.CIC.V[j])
			}
		}
	}
	if _, err := run("csv", 0); err == nil || !strings.Contains(err.Error(), "--features cic") {
		t.Errorf("csv without features: %v", err)
	}
	cmd := NewFlowsCommand()
	cmd.SetArgs([]string{"--features", "netflow", pcap})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "cic") {
		t.Errorf("unknown feature set: %v", err)
	}
}
