package decodecmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/flow"

	"capfleet.dev/capfleet/internal/testenv"
)

// zeekConn is one conn.log line, keyed by column name.
type zeekConn map[string]string

func (c zeekConn) key() string {
	return strings.Join([]string{c["id.orig_h"], c["id.orig_p"], c["id.resp_h"], c["id.resp_p"], c["proto"]}, " ")
}

func readConnLog(t *testing.T, path string) []zeekConn {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	var out []zeekConn
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "#fields\t"); ok {
			names = strings.Split(rest, "\t")
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		vals := strings.Split(line, "\t")
		if len(vals) != len(names) {
			t.Fatalf("%s: %d values for %d fields: %q", path, len(vals), len(names), line)
		}
		c := zeekConn{}
		for i, n := range names {
			c[n] = vals[i]
		}
		out = append(out, c)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFlowParityWithZeek aggregates the traces Zeek's own test suite logged and compares every
// connection's packets and bytes each way, state and history with Zeek's conn.log baseline.
func TestFlowParityWithZeek(t *testing.T) {
	root := testenv.Pcaps(t)
	for _, tc := range []struct{ pcap, connLog string }{
		{"zeek/wikipedia.pcap", "zeek-oracles/opt.basic/conn.log"},
		{"zeek/q-in-q.pcap", "zeek-oracles/core.q-in-q/conn.log"},
	} {
		t.Run(tc.pcap, func(t *testing.T) {
			want := readConnLog(t, filepath.Join(root, tc.connLog))
			if len(want) == 0 {
				t.Fatalf("%s has no connections", tc.connLog)
			}
			var out, errb bytes.Buffer
			o := &flowsOptions{output: "json", activeTimeout: time.Hour, maxFlows: 1000, checksums: true}
			if err := runFlows(&out, &errb, filepath.Join(root, tc.pcap), o); err != nil {
				t.Fatal(err)
			}
			got := map[string]flow.Record{}
			dec := json.NewDecoder(&out)
			for dec.More() {
				var r flow.Record
				if err := dec.Decode(&r); err != nil {
					t.Fatal(err)
				}
				k := strings.Join([]string{r.OrigH, itoa(r.OrigP), r.RespH, itoa(r.RespP), r.Proto}, " ")
				if _, dup := got[k]; dup {
					t.Errorf("flow %s reported twice", k)
				}
				got[k] = r
			}
			for _, w := range want {
				g, ok := got[w.key()]
				if !ok {
					t.Errorf("Zeek's connection %s (%s) missing", w.key(), w["uid"])
					continue
				}
				delete(got, w.key())
				check := func(field string, v any) {
					gs := jsonText(v)
					if w[field] != gs {
						t.Errorf("%s %s: got %s, Zeek %s", w.key(), field, gs, w[field])
					}
				}
				check("orig_pkts", g.OrigPkts)
				check("resp_pkts", g.RespPkts)
				check("orig_ip_bytes", g.OrigIPBytes)
				check("resp_ip_bytes", g.RespIPBytes)
				check("conn_state", g.ConnState)
				check("history", g.History)
				check("ip_proto", g.IPProto)
				if w["duration"] == "-" {
					if g.Duration != 0 {
						t.Errorf("%s duration: got %f, Zeek unset", w.key(), g.Duration)
					}
					continue
				}
				check("duration", strings.TrimSpace(strconvF(g.Duration)))
				check("orig_bytes", g.OrigBytes)
				check("resp_bytes", g.RespBytes)
			}
			for k := range got {
				t.Errorf("flow %s not in Zeek's conn.log", k)
			}
		})
	}
}
