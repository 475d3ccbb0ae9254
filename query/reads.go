package query

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/store"
)

// The reads below are what `capfleet ui` asks, through the same code the query commands run, so the web
// view and the terminal answer alike.

// FlowSearch selects stored flows the way `query flows` does: a time range, optionally one address
// (one partition read per hour), a port on either side, a transport, and the sensor they were stored
// under.
type FlowSearch struct {
	From, To time.Time
	IP       netip.Addr
	Port     int
	Proto    string
	Sensor   string
}

// SearchFlows returns the flows active in the search's range that match it.
func SearchFlows(ctx context.Context, r *store.Reader, s FlowSearch) ([]store.Flow, error) {
	if s.Port < 0 || s.Port > 65535 {
		return nil, fmt.Errorf("port %d is not a port", s.Port)
	}
	if s.Proto != "" && s.Proto != "tcp" && s.Proto != "udp" && s.Proto != "icmp" && s.Proto != "sctp" {
		return nil, fmt.Errorf("proto %q: want tcp, udp, icmp or sctp", s.Proto)
	}
	var (
		flows []store.Flow
		err   error
	)
	if s.IP.IsValid() {
		flows, err = r.FlowsByIP(ctx, s.IP, s.From, s.To)
	} else {
		flows, err = r.FlowsBetween(ctx, s.From, s.To)
	}
	if err != nil {
		return nil, err
	}
	return bySensor(selectFlows(flows, s.Port, s.Proto), s.Sensor), nil
}

// SensorFlows are the flows active in [from, to] stored under sensor ("": all), what query top and
// query graph build on.
func SensorFlows(ctx context.Context, r *store.Reader, sensor string, from, to time.Time) ([]store.Flow, error) {
	flows, err := r.FlowsBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return bySensor(flows, sensor), nil
}

func bySensor(flows []store.Flow, sensor string) []store.Flow {
	if sensor == "" {
		return flows
	}
	kept := flows[:0]
	for _, f := range flows {
		if f.Sensor == sensor {
			kept = append(kept, f)
		}
	}
	return kept
}

// FlowPackets writes the packets of one flow (its uid or Community ID, the flow active in [from, to])
// stored under sensor to out, as `query packets --flow` writes them: pcap when they share a link type,
// else pcapng. The flow and the file format are settled before the first byte is written, so a caller
// can still answer with an error; start hears them.
func FlowPackets(ctx context.Context, r *store.Reader, sensor, id string, from, to time.Time, out io.Writer,
	start func(f store.Flow, format string)) (int, error) {
	f, err := findFlow(ctx, r, id, from, to)
	if err != nil {
		return 0, err
	}
	if sensor != "" && f.Sensor != sensor {
		return 0, fmt.Errorf("flow %s was stored under sensor %q, not %q", id, f.Sensor, sensor)
	}
	sel := selection{q: store.PacketQuery{Sensor: f.Sensor, From: f.Start, To: f.End, Hosts: []netip.Addr{f.OrigAddr, f.RespAddr}}, flow: &f}
	lts, err := r.LinkTypes(ctx, sel.q.Sensor, sel.q.From, sel.q.To)
	if err != nil {
		return 0, err
	}
	format := "pcap"
	if len(lts) > 1 {
		format = "pcapng"
	}
	start(f, format)
	n, _, _, err := exportPackets(ctx, r, sel, format, "-", out)
	return n, err
}

// ParseTime reads a time as --from and --to do: RFC 3339 (UTC without a zone) or seconds since the epoch.
func ParseTime(s string) (time.Time, error) { return parseTime(s) }
