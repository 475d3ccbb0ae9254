package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The bar that `pcap replay` draws on a terminal ends at the run's byte total.
func TestProgressBarReachesTheTotal(t *testing.T) {
	pkts := synthetic(50)
	r, err := New(Config{Open: memOpener(pkts), Pace: Pace{PPS, 500}, Loops: 2, Target: &memTarget{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Scan(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	end := progressBar(&out)(r)
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	end()
	s := out.String()
	if !strings.Contains(s, "100%") || !strings.Contains(s, "(1.0/1.0 kB") {
		t.Fatalf("bar did not end at 100%% of 1,000 bytes:\n%q", s)
	}
	if !strings.Contains(s, "replay") {
		t.Fatalf("bar lacks its description:\n%q", s)
	}
}
