package store

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/flow"
)

const insertFlowFeatures = `INSERT INTO flow_features (bucket, shard, start_ns, uid, sensor, src_ip, src_port, dst_ip, dst_port, proto, closed, cic)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`

// featureStatements are the flow_features rows of the flows that carry features. A flow's running
// totals and its end write the same row; the cell timestamp (Flow.writeTime) keeps the newest.
func featureStatements(flows []Flow, secs int) []statement {
	var stmts []statement
	for i := range flows {
		f := &flows[i]
		c := f.CIC
		if c == nil {
			continue
		}
		cols := make(map[string]float64, len(c.V))
		for j, v := range c.V {
			cols[flow.CICColumns[j]] = v
		}
		b, shard := f.Start.UTC().Truncate(FlowBucket), flowShard(f.UID)
		stmts = append(stmts, statement{
			partition: fmt.Sprintf("x%d\x00%d", b.UnixNano(), shard),
			cql:       insertFlowFeatures,
			args: []any{b, shard, f.Start.UnixNano(), f.UID, f.Sensor, ipOf(c.Src), int(c.SrcPort), ipOf(c.Dst), int(c.DstPort),
				int(c.Protocol), f.Closed, cols, secs, f.writeTime()},
			size: 64 + 24*len(cols),
		})
	}
	return stmts
}

// FlowFeatures returns the CICFlowMeter features of the flows that started in [from, to], by uid.
func (r *Reader) FlowFeatures(ctx context.Context, from, to time.Time) (map[string]*flow.CIC, error) {
	if to.Before(from) {
		return nil, fmt.Errorf("time range: --to %s is before --from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	out := map[string]*flow.CIC{}
	for _, b := range bucketsBetween(from, to, FlowBucket) {
		for shard := range FlowShards {
			iter := r.s.Query(`SELECT uid, start_ns, src_ip, src_port, dst_ip, dst_port, proto, cic FROM flow_features
				WHERE bucket = ? AND shard = ? AND start_ns >= ? AND start_ns <= ?`, b, shard, from.UnixNano(), to.UnixNano()).
				WithContext(ctx).PageSize(1000).Iter()
			var (
				uid              string
				start            int64
				src, dst         net.IP
				sport, dport, pr int
				cols             map[string]float64
			)
			for iter.Scan(&uid, &start, &src, &sport, &dst, &dport, &pr, &cols) {
				out[uid] = cicOf(start, src, uint16(sport), dst, uint16(dport), uint8(pr), cols)
				cols = nil
			}
			if err := iter.Close(); err != nil {
				return nil, fmt.Errorf("cassandra: read flow features at %s: %w", b.Format(time.RFC3339), err)
			}
		}
	}
	return out, nil
}

func cicOf(start int64, src net.IP, sport uint16, dst net.IP, dport uint16, proto uint8, cols map[string]float64) *flow.CIC {
	c := &flow.CIC{SrcPort: sport, DstPort: dport, Protocol: proto, Start: time.Unix(0, start)}
	c.Src, _ = netip.AddrFromSlice(src)
	c.Dst, _ = netip.AddrFromSlice(dst)
	c.Src, c.Dst = c.Src.Unmap(), c.Dst.Unmap()
	for i, name := range flow.CICColumns {
		c.V[i] = cols[name]
	}
	return c
}
