package decodecmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

func decodeOut(t *testing.T, file string, o *decodeOptions) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := runDecode(&out, &errb, file, o); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestDecodeJSONMatchesTSV: the json output carries the same values as the tsv columns, numbers
// as numbers, a field that occurs more than once (the outer and inner headers of a tunnel) as an
// array, and leaves out exactly the fields the tsv shows empty.
func TestDecodeJSONMatchesTSV(t *testing.T) {
	for _, c := range []struct {
		file      string
		minLines  int
		minArrays int
	}{{"zeek/wikipedia.pcap", 100, 0}, {"zeek/tunnels/vxlan.pcap", 4, 4}} {
		arrays := jsonMatchesTSV(t, filepath.Join(testenv.Pcaps(t), c.file), c.minLines)
		if arrays < c.minArrays {
			t.Errorf("%s: %d fields with several occurrences, want at least %d", c.file, arrays, c.minArrays)
		}
	}
}

// jsonMatchesTSV compares the two outputs of one file and returns how many json values were arrays.
func jsonMatchesTSV(t *testing.T, file string, minLines int) (arrays int) {
	fields := strings.Join(parityFields, ",")
	tsv := strings.Split(strings.TrimSuffix(decodeOut(t, file, &decodeOptions{fields: fields, output: "tsv"}), "\n"), "\n")
	js := strings.Split(strings.TrimSpace(decodeOut(t, file, &decodeOptions{fields: fields, output: "json"})), "\n")
	if len(tsv) != len(js) || len(tsv) < minLines {
		t.Fatalf("%s: %d tsv lines, %d json lines", file, len(tsv), len(js))
	}
	for i := range tsv {
		cols := strings.Split(tsv[i], "\t")
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(js[i]))
		dec.UseNumber() // compare the number's text, not a float rounding of it
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, js[i])
		}
		for j, name := range parityFields {
			v, ok := obj[name]
			if cols[j] == "" {
				if ok {
					t.Errorf("line %d %s: json has %v, tsv is empty", i+1, name, v)
				}
				continue
			}
			got := fmt.Sprint(v)
			if a, isArray := v.([]any); isArray {
				arrays++
				parts := make([]string, len(a))
				for k, x := range a {
					parts[k] = fmt.Sprint(x)
				}
				got = strings.Join(parts, ",")
			}
			if !ok || got != cols[j] {
				t.Errorf("line %d %s: json %v, tsv %q", i+1, name, v, cols[j])
			}
		}
	}
	return arrays
}

func TestDecodeUnknownFieldNamesKnownOnes(t *testing.T) {
	var out, errb bytes.Buffer
	err := runDecode(&out, &errb, "unused.pcap", &decodeOptions{fields: "ip.src,ip.bogus", output: "tsv"})
	if err == nil || !strings.Contains(err.Error(), "ip.bogus") || !strings.Contains(err.Error(), "tcp.srcport") {
		t.Fatalf("got %v", err)
	}
}

// TestDecodeFilterKeepsMatchingPackets: with --filter, exactly the packets the unfiltered run
// shows on UDP port 53 remain, with their original frame numbers.
func TestDecodeFilterKeepsMatchingPackets(t *testing.T) {
	file := filepath.Join(testenv.Pcaps(t), "zeek/wikipedia.pcap")
	fields := "frame.number,udp.srcport,udp.dstport"
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(decodeOut(t, file, &decodeOptions{fields: fields, output: "tsv"})), "\n") {
		c := strings.Split(l, "\t")
		if c[1] == "53" || c[2] == "53" {
			want = append(want, l)
		}
	}
	got := strings.Split(strings.TrimSpace(decodeOut(t, file, &decodeOptions{fields: fields, output: "tsv", filter: "udp port 53"})), "\n")
	if len(want) < 10 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("filtered:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDecodeDamagedFileReportsWhere: a capture cut mid-record prints the packets before the cut
// and then fails naming where.
func TestDecodeDamagedFileReportsWhere(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.Pcaps(t), "zeek/wikipedia.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err = runDecode(&out, &errb, cut, &decodeOptions{fields: "frame.number", output: "tsv"})
	lines := strings.Count(out.String(), "\n")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("after %d packets", lines)) || lines < 10 {
		t.Fatalf("%d packets printed, error %v", lines, err)
	}
}
