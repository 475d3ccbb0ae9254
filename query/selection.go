package query

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/bpffilter"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/store"
)

// selection is what query packets was asked for: the scan (sensor, time, addresses for the block
// index), then per packet a BPF filter, an address, or a flow's 5-tuple, and a display filter.
type selection struct {
	q       store.PacketQuery
	bpf     *bpffilter.Set
	addr    netip.Addr
	flow    *store.Flow
	display *displayfilter.Filter
}

// matcher returns the per-packet test. The block index only rules blocks out; every packet of a block
// read is still checked.
func (s selection) matcher() func(p *store.Packet) bool {
	dec := decode.NewDecoder()
	// Addresses and flows need headers only; the display filter may need a DNS name.
	dec.HeadersOnly = !s.display.NeedsPayload()
	var pkt decode.Packet
	// frame numbers the packets as tshark would number them in an export made without the
	// display filter: those the other selections keep, in the order written.
	frame := 0
	return func(p *store.Packet) bool {
		if s.bpf != nil && !s.bpf.Match(p.Data, p.LinkType, len(p.Data)) {
			return false
		}
		if !s.addr.IsValid() && s.flow == nil && s.display == nil {
			return true
		}
		dec.Decode(p.Data, decode.LinkType(p.LinkType), p.Timestamp, p.OrigLen, &pkt)
		if s.addr.IsValid() && !carries(&pkt, s.addr) {
			return false
		}
		if s.flow != nil && !belongs(&pkt, s.flow) {
			return false
		}
		if s.display != nil {
			frame++
			return s.display.Match(&pkt, frame)
		}
		return true
	}
}

// carries says whether any IP header of d has a as source or destination.
func carries(d *decode.Packet, a netip.Addr) bool {
	for i := 0; i < int(d.NIP) && i < len(d.IP); i++ {
		if d.IP[i].Src.Unmap() == a || d.IP[i].Dst.Unmap() == a {
			return true
		}
	}
	return false
}

// belongs says whether d is a packet of f: the header the flow table keys on (the innermost whole one)
// has f's protocol, VLAN and ends, in either direction. ICMP flows are matched on their addresses: their
// "ports" are derived from message types. A non-first fragment has no ports and is in no flow, as in the
// flow table.
func belongs(d *decode.Packet, f *store.Flow) bool {
	h, ok := d.Inner()
	if !ok || h.Proto != f.Proto || d.VLAN[0] != f.VLAN || (h.Fragment && h.FragOffset != 0) {
		return false
	}
	src, dst := h.Src.Unmap(), h.Dst.Unmap()
	fwd := src == f.OrigAddr.Unmap() && dst == f.RespAddr.Unmap()
	rev := src == f.RespAddr.Unmap() && dst == f.OrigAddr.Unmap()
	switch f.Proto {
	case decode.ProtoTCP, decode.ProtoUDP, decode.ProtoSCTP:
		if h.L4.Proto != h.Proto {
			return false
		}
		sp, dp := h.L4.SrcPort, h.L4.DstPort
		return (fwd && sp == f.OrigPort && dp == f.RespPort) || (rev && sp == f.RespPort && dp == f.OrigPort)
	}
	return fwd || rev
}

// findFlow looks a flow up by uid or Community ID among the flows active in [from, to].
func findFlow(ctx context.Context, r *store.Reader, id string, from, to time.Time) (store.Flow, error) {
	flows, err := r.FlowsBetween(ctx, from, to)
	if err != nil {
		return store.Flow{}, err
	}
	var found []store.Flow
	for _, f := range flows {
		if f.UID == id || f.CommunityID == id {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 0:
		return store.Flow{}, fmt.Errorf("--flow %s: no flow with this uid or Community ID between %s and %s (widen --from/--to to cover its start)",
			id, from.Format(time.RFC3339), to.Format(time.RFC3339))
	case 1:
		return found[0], nil
	}
	return store.Flow{}, fmt.Errorf("--flow %s: %d flows share this Community ID in the range (the same 5-tuple, several times): give one's uid (query flows lists them)", id, len(found))
}
