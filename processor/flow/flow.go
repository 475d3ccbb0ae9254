// Package flow aggregates decoded packets into bidirectional flows keyed by the 5-tuple and
// VLAN, with the counters, TCP history and connection state of a Zeek conn.log record.
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

// lookupKey is Key with the endpoints in a canonical order, so both directions find the flow.
type lookupKey struct {
	a, b         netip.Addr
	aPort, bPort uint16
	proto        uint8
	vlan         [2]uint16
}

// tcpState is a TCP endpoint's state as Zeek tracks it, reduced to what conn_state needs.
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

// Endpoint holds one direction's counters and TCP tracking.
type Endpoint struct {
	Pkts    uint64
	IPBytes uint64
	// payload sums UDP, ICMP and other payloads; TCP bytes come from the sequence space covered
	// instead (see Bytes), so retransmissions count once, as in Zeek.
	payload uint64
	Flags   uint16 // union of TCP flags

	state      tcpState
	seqStarted bool
	didSYN     bool
	finSeen    bool
	startSeq   uint32
	maxEnd     uint64 // highest sequence offset reached, relative to startSeq
}

// Bytes is the payload the endpoint sent as Zeek counts it (orig_bytes or resp_bytes): for TCP
// the sequence space covered less SYN and FIN, otherwise the sum of payloads.
func (e *Endpoint) Bytes(proto uint8) uint64 {
	if proto != decode.ProtoTCP {
		return e.payload
	}
	n := e.maxEnd
	if e.didSYN && n > 0 {
		n--
	}
	if e.finSeen && n > 0 {
		n--
	}
	return n
}

// trackSeq extends the sequence space the endpoint covered, ignoring segments that start
// before what was already seen (retransmissions and reordering) except for their new tail.
func (e *Endpoint) trackSeq(seq uint32, payload int, flags uint16) {
	if !e.seqStarted {
		e.seqStarted, e.startSeq = true, seq
	}
	rel := seq - e.startSeq
	if rel > 1<<31 {
		return // before the start: a retransmission of something earlier
	}
	end := uint64(rel) + uint64(max(payload, 0))
	if flags&decode.TCPSyn != 0 {
		e.didSYN = true
		end++
	}
	if flags&decode.TCPFin != 0 {
		e.finSeen = true
		end++
	}
	e.maxEnd = max(e.maxEnd, end)
}

const maxHistory = 32

// Flow is one bidirectional conversation. A *Flow handed to the expiry callback is valid only
// during the call: copy it, or take its Record.
type Flow struct {
	Key
	First, Last time.Time
	Orig, Resp  Endpoint
	// Flipped is true when the first packet seen came from the responder (a SYN-ACK), so the
	// roles were swapped, as Zeek marks with '^' in the history.
	Flipped bool

	history    [maxHistory]byte
	historyLen uint8
	historySet uint64 // which (letter, direction) pairs are already in history

	lookup           lookupKey
	lruPrev, lruNext *Flow // by last activity, least recent first
	agePrev, ageNext *Flow // by creation, oldest first
}

// History is Zeek's history string: one letter per event, upper case from the originator.
func (f *Flow) History() string { return string(f.history[:f.historyLen]) }

// addHistory records an event letter (lower case) once per direction.
func (f *Flow) addHistory(c byte, fromOrig bool) {
	idx := uint(c - 'a')
	if fromOrig {
		idx += 32
	}
	bit := uint64(1) << idx
	if f.historySet&bit != 0 || int(f.historyLen) >= maxHistory {
		return
	}
	f.historySet |= bit
	if fromOrig {
		c -= 'a' - 'A'
	}
	f.history[f.historyLen] = c
	f.historyLen++
}

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
				(os == tcpReset && f.Orig.Bytes(f.Proto) == 0 && f.Resp.Bytes(f.Proto) == 0) {
				return "REJ"
			}
			if oInactive {
				return "RSTRH"
			}
			return "RSTR"
		case os == tcpReset:
			if rInactive {
				return "RSTOS0"
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
		o, r := f.Orig.Pkts > 0, f.Resp.Pkts > 0
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

// CommunityID is the flow's Community ID v1 with seed 0.
func (f *Flow) CommunityID() string {
	return CommunityID(0, f.Key.Orig, f.Key.Resp, f.OrigPort, f.RespPort, f.Proto)
}

// UID is a Zeek-style connection identifier derived from the key and start time, so that the
// same flow read twice (a restarted pipeline) gets the same UID and overwrites its record.
func (f *Flow) UID() string {
	h := fnv.New64a()
	var b [8]byte
	h.Write(f.Key.Orig.AsSlice())
	h.Write(f.Key.Resp.AsSlice())
	binary.BigEndian.PutUint16(b[:], f.OrigPort)
	binary.BigEndian.PutUint16(b[2:], f.RespPort)
	b[4] = f.Proto
	h.Write(b[:5])
	binary.BigEndian.PutUint16(b[:], f.VLAN[0])
	binary.BigEndian.PutUint16(b[2:], f.VLAN[1])
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
