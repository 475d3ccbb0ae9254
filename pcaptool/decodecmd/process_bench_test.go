package decodecmd

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/pcapfile"

	"capfleet.dev/capfleet/internal/testenv"
)

// mainEnv makes the test binary act as the command when re-executed, so benchmarks can time a
// whole `pcap decode` process exactly as they time tshark and tcpdump.
const mainEnv = "CAPFLEET_DECODECMD_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		root := &cobra.Command{Use: "pcap", SilenceUsage: true}
		root.AddCommand(NewDecodeCommand(), NewFlowsCommand())
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchProcessCapture is a real capture of 82,582 packets (6.8 MB), mostly TCP and UDP echo flows.
const benchProcessCapture = "zeek/echo-connections.pcap"

// BenchmarkProcess times whole processes reading the same capture with output discarded:
// `capfleet pcap decode` with the parity fields, `pcap flows`, `tshark -T fields` with the same
// fields and `tcpdump -nn`. Compare ns/op across sub-benchmarks for the ratios. Run with
// -benchtime 3x: tshark takes seconds per run.
func BenchmarkProcess(b *testing.B) {
	file := filepath.Join(testenv.Pcaps(b), benchProcessCapture)
	packets := countPackets(b, file)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	tsharkArgs := []string{"-n", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	tsharkArgs = append(tsharkArgs, tsharkPrefs...)
	for _, f := range parityFields {
		tsharkArgs = append(tsharkArgs, "-e", f)
	}
	cases := []struct {
		name string
		tool string
		args []string
		env  []string
	}{
		{"capfleet-decode", self, []string{"decode", "--fields", strings.Join(parityFields, ","), file}, []string{mainEnv + "=1"}},
		{"capfleet-flows", self, []string{"flows", file}, []string{mainEnv + "=1"}},
		{"tshark-fields", "tshark", tsharkArgs, nil},
		{"tcpdump-nn", "tcpdump", []string{"-nn", "-r", file}, nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			path, err := exec.LookPath(c.tool)
			if err != nil {
				b.Skipf("%s not installed: run bash hack/deps.sh", c.tool)
			}
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer devnull.Close()
			for b.Loop() {
				cmd := exec.Command(path, c.args...)
				cmd.Env = append(os.Environ(), c.env...)
				cmd.Stdout, cmd.Stderr = devnull, devnull
				if err := cmd.Run(); err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(packets), "ns/pkt")
		})
	}
}

func countPackets(b *testing.B, file string) int {
	r, err := pcapfile.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				b.Fatal(err)
			}
			return n
		}
		n++
	}
}
