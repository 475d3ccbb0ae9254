package flow

import (
	"strings"
	"testing"
	"time"
)

// TestTSVTimesAreExact: ts and duration print every microsecond, which a float64 of the epoch
// time in seconds cannot promise.
func TestTSVTimesAreExact(t *testing.T) {
	first := time.Unix(1300475167, 96535_000)
	r := Record{TS: first, LastTS: first.Add(61329 * time.Microsecond), HasDuration: true}
	cols := strings.Split(string(r.AppendTSV(nil)), "\t")
	if len(cols) != len(TSVFields) || cols[0] != "1300475167.096535" || cols[7] != "0.061329" {
		t.Fatalf("got %q", cols)
	}
}
