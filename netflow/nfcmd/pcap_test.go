package nfcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/netflow"
)

// TestPcapNetflowMatchesNfdump: softflowd exports two captures as v5, v9 and IPFIX to nfcapd and to a
// socket whose datagrams become a capture file; `pcap netflow` on that file prints the flows nfdump
// prints (addresses, ports, protocol, packets, bytes, times) and counts the sequence errors nfcapd counts.
func TestPcapNetflowMatchesNfdump(t *testing.T) {
	needTools(t, "softflowd", "nfcapd", "nfdump")
	for _, capture := range oracleCaptures(t) {
		for _, version := range []int{5, 9, 10} {
			t.Run(fmt.Sprintf("%s/v%d", filepath.Base(capture), version), func(t *testing.T) {
				nf := startNfcapd(t)
				l := listenUDP(t)
				softflowd(t, capture, version, nf.port, l.port())
				dgs := l.quiet()
				nf.stop(t)
				theirs := nf.flows(t)

				file := filepath.Join(t.TempDir(), "export.pcap")
				writePcap(t, file, l.port(), dgs)
				var stdout, stderr bytes.Buffer
				if err := runPcap(&stdout, &stderr, file, &pcapOptions{output: "json", stats: true}); err != nil {
					t.Fatal(err)
				}
				var ours []oracleFlow
				dec := json.NewDecoder(&stdout)
				for dec.More() {
					var r netflow.Record
					if err := dec.Decode(&r); err != nil {
						t.Fatal(err)
					}
					if int(r.Version) != version {
						t.Fatalf("record of version %d: %+v", r.Version, r)
					}
					ours = append(ours, recordFlow(&r))
				}
				sameFlows(t, "pcap netflow", version, ours, theirs)
				stats := stderr.String()
				if got, want := stat(t, stats, "sequence_errors"), nf.sequenceErrors(t); got != want {
					t.Errorf("sequence errors %d, nfcapd counted %d\n%s", got, want, stats)
				}
				if n := stat(t, stats, "template_errors") + stat(t, stats, "malformed"); n != 0 {
					t.Errorf("errors decoding softflowd's export:\n%s", stats)
				}
				t.Logf("%d datagrams, %d flows; nfcapd: %s", len(dgs), len(ours), strings.TrimSpace(seqErrors.FindString(nf.log.String())))
			})
		}
	}
}

func stat(t *testing.T, stats, name string) uint64 {
	m := regexp.MustCompile(`(?m)^` + name + `\t(\d+)$`).FindStringSubmatch(stats)
	if m == nil {
		t.Fatalf("no %s in %q", name, stats)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}

// The real captures: a Fritz!Box's IPFIX templates (enterprise and variable-length fields), and a v9
// stream caught after its templates were sent, whose data sets are all template errors.
func TestPcapNetflowRealCaptures(t *testing.T) {
	pcaps := filepath.Join(filepathRoot(t), "ndpi")
	for _, c := range []struct {
		file                         string
		records, templates, tmplErrs uint64
	}{
		{"netflow-fritz.pcap", 0, 3, 0},
		{"netflowv9.pcap", 0, 0, 23},
	} {
		var stdout, stderr bytes.Buffer
		if err := runPcap(&stdout, &stderr, filepath.Join(pcaps, c.file), &pcapOptions{output: "csv", stats: true}); err != nil {
			t.Fatal(err)
		}
		s := stderr.String()
		if stat(t, s, "records") != c.records || stat(t, s, "templates") != c.templates || stat(t, s, "template_errors") != c.tmplErrs || stat(t, s, "malformed") != 0 {
			t.Errorf("%s:\n%s", c.file, s)
		}
	}
}
