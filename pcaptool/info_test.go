package pcaptool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPcap(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceErrors = true
	err := cmd.Execute()
	return out.String(), err
}

// A good file and the same file cut mid-record: JSON has both, the cut one with the offset of the record
// it ends in and every packet before it, and the command fails.
func TestInfoJSONAndExitStatus(t *testing.T) {
	good := filepath.Join(pcapsDir(t), "gopacket", "pcap", "test_dns.pcap")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	full := Info(good)
	if full.Error != "" || full.Packets != 10 {
		t.Fatalf("%s: %+v", good, full)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)-10], 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := runPcap(t, "info", "-o", "json", good, cut)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 files") {
		t.Fatalf("want an error naming 1 of 2 files, got %v", err)
	}
	var infos []FileInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(infos) != 2 {
		t.Fatalf("%d entries", len(infos))
	}
	g, c := infos[0], infos[1]
	if g.Format != "pcap" || g.Packets != 10 || g.Error != "" || len(g.LinkTypes) != 1 || g.LinkTypes[0].Value != 1 ||
		g.CapturedBytes != int64(len(data)-24-10*16) || g.First == nil || g.DurationSeconds < 0 {
		t.Errorf("good file: %+v", g)
	}
	if c.Packets != 9 || c.Error == "" || c.ErrorOffset == nil || *c.ErrorOffset <= 24 || *c.ErrorOffset >= int64(len(data)) {
		t.Errorf("cut file: %+v", c)
	}
	if !g.First.Equal(*c.First) {
		t.Errorf("first timestamps differ: %v %v", g.First, c.First)
	}
}

func TestInfoText(t *testing.T) {
	good := filepath.Join(pcapsDir(t), "gopacket", "pcapgo", "tests", "le", "test010.pcapng")
	out, err := runPcap(t, "info", good)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Format:          pcapng\n", "Packets:         4\n", "Link types:      Ethernet (1)\n", "First packet:", "Duration:"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if _, err := runPcap(t, "info", filepath.Join(t.TempDir(), "missing.pcap")); err == nil {
		t.Error("a missing file is not an error")
	}
	if _, err := runPcap(t, "info", "-o", "yaml", good); err == nil {
		t.Error("-o yaml accepted")
	}
}
