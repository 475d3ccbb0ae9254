package query

import (
	"strings"
	"testing"
)

// The CSV is CICFlowMeter's columns alone and the table has no room for them: asking for either
// without the other is refused before Cassandra is reached.
func TestFlowsFeaturesNeedAnOutputThatHoldsThem(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"flows", "-o", "csv"}, "add --features cic"},
		{[]string{"flows", "--features", "cic"}, "use -o csv or -o json"},
		{[]string{"flows", "--features", "nprint"}, "nprint"},
		{[]string{"flows", "-o", "xml"}, "want table, json or csv"},
	} {
		_, err := run(append(c.args, "--cassandra-hosts", "127.0.0.1:1")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("query %v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
