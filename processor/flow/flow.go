// Package flow aggregates decoded packets into bidirectional flows keyed by the 5-tuple and
// VLAN, with the counters, TCP history and connection state of a Zeek conn.log record.
package flow

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"strings"
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
	// count sums UDP, ICMP and other payloads; for TCP it is the highest sequence offset reached
	// relative to startSeq, so retransmissions count once, as in Zeek (see Bytes).
	count    uint64
	startSeq uint32
	Flags    uint16 // union of TCP flags
	state    tcpState
	bits     uint8 // seqStarted, didSYN, finSeen
}

const (
	seqStarted uint8 = 1 << iota
	didSYN
	finSeen
)

// Bytes is the payload the endpoint sent as Zeek counts it (orig_bytes or resp_bytes): for TCP
// the sequence space covered less SYN and FIN, otherwise the sum of payloads.
func (e *Endpoint) Bytes(proto uint8) uint64 {
	n := e.count
	if proto != decode.ProtoTCP {
		return n
	}
	if e.bits&didSYN != 0 && n > 0 {
		n--
	}
	if e.bits&finSeen != 0 && n > 0 {
		n--
	}
	return n
}

// trackSeq extends the sequence space the endpoint covered, ignoring segments that start
// before what was already seen (retransmissions and reordering) except for their new tail.
func (e *Endpoint) trackSeq(seq uint32, payload int, flags uint16) {
	if e.bits&seqStarted == 0 {
		e.bits |= seqStarted
		e.startSeq = seq
	}
	rel := seq - e.startSeq
	if rel > 1<<31 {
		return // before the start: a retransmission of something earlier
	}
	end := uint64(rel) + uint64(max(payload, 0))
	if flags&decode.TCPSyn != 0 {
		e.bits |= didSYN
		end++
	}
	if flags&decode.TCPFin != 0 {
		e.bits |= finSeen
		end++
	}
	e.count = max(e.count, end)
}

// historyLetters are the events recorded, each once per direction; '^' comes from Flipped.
const historyLetters = "shadfrq"

// maxHistory holds every letter of historyLetters once per direction.
const maxHistory = 2 * len(historyLetters)

// Flow is one bidirectional conversation as the table hands it to OnEnd: valid only during the
// call (copy it, or take its Record).
type Flow struct {
	Key
	First, Last time.Time
	Orig, Resp  Endpoint
	// Flipped is true when the first packet seen came from the responder (a SYN-ACK), so the
	// roles were swapped, as Zeek marks with '^' in the history.
	Flipped bool

	history    [maxHistory]byte
	historyLen uint8
}

// entry is a flow while it is in the table, laid out to take 160 bytes (a size class): with the
// map's slot for its key, the table's memory per flow.
type entry struct {
	lookup     lookupKey
	origIsB    bool // the originator is lookup.b
	flipped    bool
	historyLen uint8
	dirty      bool // changed since the last Table.Dirty; in the padding before first, so free

	first, last int64 // Unix nanoseconds
	Orig, Resp  Endpoint

	historySet uint16 // which (letter, direction) pairs are already in history
	history    [maxHistory]byte

	lruPrev, lruNext *entry // by last activity, least recent first
}

// key is the entry's key in the direction of its originator.
func (e *entry) key() Key {
	l := &e.lookup
	k := Key{Orig: addr(l.a, l.v4), Resp: addr(l.b, l.v4), OrigPort: l.aPort, RespPort: l.bPort, Proto: l.proto, VLAN: l.vlan}
	if e.origIsB {
		k.Orig, k.Resp, k.OrigPort, k.RespPort = k.Resp, k.Orig, k.RespPort, k.OrigPort
	}
	return k
}

// flow fills f from the entry.
func (e *entry) flow(f *Flow) {
	*f = Flow{
		Key: e.key(), First: time.Unix(0, e.first), Last: time.Unix(0, e.last),
		Orig: e.Orig, Resp: e.Resp, Flipped: e.flipped, history: e.history, historyLen: e.historyLen,
	}
}

// History is Zeek's history string: one letter per event, upper case from the originator.
func (f *Flow) History() string {
	if f.Flipped {
		return "^" + string(f.history[:f.historyLen])
	}
	return string(f.history[:f.historyLen])
}

// addHistory records an event letter of historyLetters (lower case) once per direction.
func (e *entry) addHistory(c byte, fromOrig bool) {
	idx := uint(strings.IndexByte(historyLetters, c))
	if fromOrig {
		idx += uint(len(historyLetters))
	}
	bit := uint16(1) << idx
	if e.historySet&bit != 0 || int(e.historyLen) >= maxHistory {
		return
	}
	e.historySet |= bit
	if fromOrig {
		c -= 'a' - 'A'
	}
	e.history[e.historyLen] = c
	e.historyLen++
}

// Duration is the time between the first and last packet.
func (f *Flow) Duration() time.Duration { return f.Last.Sub(f.First) }

// ConnState is Zeek's conn_state, from the endpoints' TCP states or whether each side sent.
func (f *Flow) ConnState() string {
	os, rs := f.Orig.state, f.Resp.state
	proto := f.Proto
	switch proto {
	case decode.ProtoTCP:
		oInactive := os == tcpInactive || os == tcpPartial
		rInactive := rs == tcpInactive || rs == tcpPartial
		switch {
		case rs == tcpReset:
			if os == tcpSynSent || os == tcpSynAckSent ||
				(os == tcpReset && f.Orig.Bytes(proto) == 0 && f.Resp.Bytes(proto) == 0) {
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
