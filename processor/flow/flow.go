// Package flow aggregates decoded packets into bidirectional flows that behave as Zeek's
// connections do: keyed by the innermost 5-tuple and VLAN, with Zeek's originator rules, its TCP
// endpoint tracking, connection states, history letters and timers (a reset or a close ends a
// connection after Zeek's delay, and later packets of the same 5-tuple start a new one), ICMP
// request/reply pairing and its per-protocol inactivity timeouts.
package flow

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// Key identifies a flow in the direction of its originator.
type Key struct {
	Orig, Resp         netip.Addr
	OrigPort, RespPort uint16 // for ICMP: type and code (or counterpart type), as Zeek logs them
	Proto              uint8
	VLAN               [2]uint16 // outer and inner VLAN ID, 0 when untagged
}

// lookupKey is a Key with the endpoints in a canonical order, so both directions find the
// flow, and addresses as 16 bytes (IPv4 mapped), which keeps it at 44 bytes: the flow table's
// memory per flow is mostly this key, once in the map and once in the Flow.
type lookupKey struct {
	a, b         [16]byte
	aPort, bPort uint16
	vlan         [2]uint16
	proto        uint8
	v4           bool
}

func addr(b [16]byte, v4 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

// tcpState is a TCP endpoint's state as Zeek tracks it (TCP_ENDPOINT_*).
type tcpState uint8

const (
	tcpInactive tcpState = iota
	tcpSynSent
	tcpSynAckSent
	tcpPartial
	tcpEstablished
	tcpClosed
	tcpReset
)

// handshake says whether s is one of the states before a connection is under way.
func (s tcpState) handshake() bool {
	return s == tcpInactive || s == tcpSynSent || s == tcpSynAckSent
}

// Endpoint holds one direction's counters and, for TCP, Zeek's view of the sender.
type Endpoint struct {
	Pkts    uint64
	IPBytes uint64
	// count sums UDP, ICMP and other payloads. For TCP it is Zeek's last sequence number reached
	// relative to startSeq, in 64 bits (so in a Flow, Bytes works it out with ack and FIN).
	count    uint64
	startSeq uint32
	Flags    uint16 // union of TCP flags
	state    tcpState
	bits     uint8
}

// Endpoint bits.
const (
	epSeqInit  uint8 = 1 << iota // TCP: startSeq is set (a packet from it, or an ACK of its data)
	epFIN                        // TCP: sent a FIN (Zeek's FIN_cnt > 0)
	epDidClose                   // TCP: Zeek's did_close, the close was reported
	epActive                     // UDP, ICMP: a valid packet seen (UDP_ACTIVE / ICMP_ACTIVE)
	epBitsAll  = epSeqInit | epFIN | epDidClose | epActive
)

// Bytes is the payload the endpoint sent as Zeek counts it (orig_bytes or resp_bytes): for TCP
// the sequence space covered (as far as the peer acknowledged it) less SYN and FIN, otherwise
// the sum of payloads.
func (e *Endpoint) Bytes(proto uint8) uint64 { return e.count }

// Flow is one bidirectional conversation as the table hands it to OnEnd: valid only during the
// call (copy it, or take its Record).
type Flow struct {
	Key
	// First and Last bound Zeek's duration: for TCP, Last stops at the packet that closed both sides
	// (Zeek's conn.log leaves later ACKs and RSTs out of it, though it counts them).
	First, Last time.Time
	// LastPacket is the time of the flow's last packet, counted or not: where its packets end, for
	// what stores and exports them by time.
	LastPacket time.Time
	Orig, Resp Endpoint
	// Flipped is true when Zeek's rules made the receiver of the first packet the originator
	// (a reply from a well-known service port, a SYN that follows a SYN-ACK), which Zeek marks
	// with '^' in the history.
	Flipped bool
	// Tunnel is the encapsulation of the flow's packets (the innermost one around them), as
	// Zeek's tunnel_parents records it; Type is decode.TunnelNone for a flow not tunnelled.
	Tunnel Tunnel
	// CIC are the flow's CICFlowMeter features when the table computes them (Config.Features),
	// nil otherwise; valid, as the Flow, only during the call.
	CIC *CIC

	history    [maxHistory]byte
	historyLen uint8
}

// Tunnel is the encapsulation a flow's packets arrived in: its kind and the endpoints of the
// outer header around them. Changes counts the times a packet came in another encapsulation
// than the one before it.
type Tunnel struct {
	Type             decode.Tunnel
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // for a tunnel carried in UDP (VXLAN, Geneve, GTP, Teredo, AYIYA)
	Changes          uint8
}

// History is Zeek's history string: one letter per event, upper case from the originator.
func (f *Flow) History() string { return string(f.history[:f.historyLen]) }

// Duration is the time between the first and last packet.
func (f *Flow) Duration() time.Duration { return f.Last.Sub(f.First) }

// ConnState is Zeek's conn_state, from the endpoints' TCP states or whether each side sent.
func (f *Flow) ConnState() string {
	os, rs := f.Orig.state, f.Resp.state
	switch f.Proto {
	case decode.ProtoTCP:
		oInactive := os == tcpInactive || os == tcpPartial
		rInactive := rs == tcpInactive || rs == tcpPartial
		switch {
		case rs == tcpReset:
			if os == tcpSynSent || os == tcpSynAckSent ||
				(os == tcpReset && f.Orig.count == 0 && f.Resp.count == 0) {
				return "REJ"
			}
			if oInactive {
				return "RSTRH"
			}
			return "RSTR"
		case os == tcpReset:
			if rInactive {
				if rstos0(f.History()) {
					return "RSTOS0"
				}
				return "OTH"
			}
			return "RSTO"
		case os == tcpClosed && rs == tcpClosed:
			return "SF"
		case os == tcpClosed:
			if rInactive {
				return "SH"
			}
			return "S2"
		case rs == tcpClosed:
			if oInactive {
				return "SHR"
			}
			return "S3"
		case os == tcpSynSent && rs == tcpInactive:
			return "S0"
		case os == tcpEstablished && rs == tcpEstablished:
			return "S1"
		}
		return "OTH"
	case decode.ProtoUDP:
		o, r := f.Orig.bits&epActive != 0, f.Resp.bits&epActive != 0
		switch {
		case o && r:
			return "SF"
		case o:
			return "S0"
		case r:
			return "SHR"
		}
	}
	return "OTH"
}

// rstos0 matches Zeek's /^\^?S[^HAFGIQ]*R.*/ on the history: the originator sent a SYN, then a
// RST, with no SYN-ACK, ACK, FIN, gap, or odd flags of its own in between.
func rstos0(h string) bool {
	if len(h) > 0 && h[0] == '^' {
		h = h[1:]
	}
	if len(h) == 0 || h[0] != 'S' {
		return false
	}
	for i := 1; i < len(h); i++ {
		switch h[i] {
		case 'R':
			return true
		case 'H', 'A', 'F', 'G', 'I', 'Q':
			return false
		}
	}
	return false
}

// CommunityID is the flow's Community ID v1 with seed 0, of its (innermost) 5-tuple.
func (f *Flow) CommunityID() string {
	return CommunityID(0, f.Key.Orig, f.Key.Resp, f.OrigPort, f.RespPort, f.Proto)
}

// UID is a Zeek-style connection identifier derived from the key and start time, so that the
// same flow read twice (a restarted pipeline) gets the same UID and overwrites its record.
func (f *Flow) UID() string {
	k := f.Key
	h := fnv.New64a()
	var b [8]byte
	h.Write(k.Orig.AsSlice())
	h.Write(k.Resp.AsSlice())
	binary.BigEndian.PutUint16(b[:], k.OrigPort)
	binary.BigEndian.PutUint16(b[2:], k.RespPort)
	b[4] = k.Proto
	h.Write(b[:5])
	binary.BigEndian.PutUint16(b[:], k.VLAN[0])
	binary.BigEndian.PutUint16(b[2:], k.VLAN[1])
	h.Write(b[:4])
	binary.BigEndian.PutUint64(b[:], uint64(f.First.UnixNano()))
	h.Write(b[:])
	v := h.Sum64()
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := []byte{'C'}
	for v > 0 {
		out = append(out, digits[v%62])
		v /= 62
	}
	return string(out)
}
