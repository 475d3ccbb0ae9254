package query

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// attachFeatures gives each flow the CICFlowMeter features its pipeline stored (flow_features, keyed by
// the flow's uid and its start hour) and returns how many flows have none: flows from a pipeline
// without --flow-features cic, or that ended before it was turned on.
func attachFeatures(ctx context.Context, r *store.Reader, flows []store.Flow, to time.Time) (int, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	// A flow active in the range may have started before it: the features are filed by start.
	earliest := flows[0].Start
	for i := range flows {
		if flows[i].Start.Before(earliest) {
			earliest = flows[i].Start
		}
	}
	byUID, err := r.FlowFeatures(ctx, earliest, to)
	if err != nil {
		return 0, err
	}
	missing := 0
	for i := range flows {
		flows[i].CIC = byUID[flows[i].UID]
		if flows[i].CIC == nil {
			missing++
		}
	}
	return missing, nil
}

// writeFlowsCSV prints the flows' features in CICFlowMeter's CSV layout, header first, as `capfleet pcap
// flows --features cic -o csv` does, so notebooks read both alike. Flows without features are left out.
func writeFlowsCSV(w io.Writer, flows []store.Flow) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", flow.CICHeader)
	var line []byte
	for i := range flows {
		if c := flows[i].CIC; c != nil {
			line = c.AppendCSV(line[:0])
			bw.Write(line)
		}
	}
	return bw.Flush()
}
