// Package netflow decodes NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) export packets into
// flow records: what a collector receives over UDP and what `capfleet pcap netflow` finds in a capture.
//
// A Decoder keeps, per exporter (source address), version and observation domain (v9 source ID, v5
// engine), the templates and options templates announced so far and the next sequence number expected.
// Templates expire after Config.TemplateTimeout without a refresh (RFC 7011 section 8.4: over UDP an
// exporter resends them, and a collector forgets those not resent). Sequence numbers that jump forward
// count as lost units: flows for v5, export packets for v9, data records for IPFIX, as each version
// defines its counter. Malformed input is counted and skipped, never a panic (see FuzzDecode).
package netflow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Record is one flow as an exporter reported it: unidirectional, source to destination.
type Record struct {
	Exporter netip.Addr `json:"exporter"`
	Version  uint16     `json:"version"`
	// Domain is the IPFIX observation domain, the v9 source ID, or the v5 engine type and ID (type<<8|id).
	Domain   uint32     `json:"domain"`
	SrcAddr  netip.Addr `json:"src_addr"`
	DstAddr  netip.Addr `json:"dst_addr"`
	SrcPort  uint16     `json:"src_port"`
	DstPort  uint16     `json:"dst_port"`
	Proto    uint8      `json:"proto"`
	TCPFlags uint8      `json:"tcp_flags"`
	ToS      uint8      `json:"tos"`
	Packets  uint64     `json:"packets"`
	Bytes    uint64     `json:"bytes"`
	Start    time.Time  `json:"start"`
	End      time.Time  `json:"end"`
	// Input and Output are the SNMP interface indexes, when exported.
	Input  uint32 `json:"input_if,omitempty"`
	Output uint32 `json:"output_if,omitempty"`
}

// Config tunes a Decoder. The zero value is usable.
type Config struct {
	// TemplateTimeout forgets a template not refreshed for this long (by the exporter's clock as the
	// caller passes it to Decode). 0 picks DefaultTemplateTimeout; negative never expires.
	TemplateTimeout time.Duration
	// MaxSessions bounds the exporter/domain sessions kept (default 65536); past it, packets of a new
	// session are dropped and counted as Stats.SessionsRefused, so spoofed sources cannot grow memory.
	MaxSessions int
}

// DefaultTemplateTimeout is 30 minutes: Cisco and softflowd resend templates every few minutes or
// packets, and RFC 7011 leaves the value to the collector as long as it exceeds the exporter's refresh.
const DefaultTemplateTimeout = 30 * time.Minute

// Limits on what one session may define: beyond them a template is refused and counted.
const (
	maxTemplatesPerSession = 4096
	maxFieldsPerTemplate   = 512
)

// Stats are monotonic counters over everything decoded.
type Stats struct {
	Packets       uint64 // export packets offered to Decode
	Records       uint64 // flow records produced
	OptionRecords uint64 // options data records read (exporter metadata, not flows)
	Templates     uint64 // template and options template records learnt (refreshes included)
	SequenceGaps  uint64 // units lost by the sequence numbers' account (flows, packets or records)
	// SequenceErrors counts packets whose sequence number was not the one expected, ahead (a gap) or
	// behind (reordering, a restart): nfcapd's "Sequence Errors".
	SequenceErrors uint64
	TemplateErrors uint64 // data sets without a (live) template, malformed template or data sets
	Malformed      uint64 // packets refused as a whole: unknown version, short or inconsistent header
	Expired        uint64 // templates forgotten after TemplateTimeout
	// SessionsRefused counts packets from new sessions past MaxSessions.
	SessionsRefused uint64
}

var (
	// ErrMalformed reports a packet that is not a NetFlow/IPFIX packet or whose header is inconsistent.
	ErrMalformed = errors.New("malformed export packet")
	// ErrSessions reports a packet from a new exporter session refused because MaxSessions are kept.
	ErrSessions = errors.New("too many exporter sessions")
)

type sessionKey struct {
	exporter netip.Addr
	version  uint16
	domain   uint32
}

// session is what one exporter's observation domain has told us so far.
type session struct {
	templates map[uint16]*template
	haveSeq   bool
	nextSeq   uint32
	// sysInit is the exporter's boot time from an IPFIX options record (systemInitTimeMilliseconds),
	// the origin of flowStartSysUpTime and flowEndSysUpTime.
	sysInit time.Time
	// gaps are the units lost in this session (Stats.SequenceGaps sums them over all sessions).
	gaps uint64
}

// Decoder decodes export packets. Not safe for concurrent use.
type Decoder struct {
	cfg      Config
	sessions map[sessionKey]*session
	Stats    Stats
	// exporters counts distinct exporter addresses seen.
	exporters map[netip.Addr]struct{}
}

// NewDecoder returns a Decoder with no templates.
func NewDecoder(cfg Config) *Decoder {
	if cfg.TemplateTimeout == 0 {
		cfg.TemplateTimeout = DefaultTemplateTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 65536
	}
	return &Decoder{cfg: cfg, sessions: map[sessionKey]*session{}, exporters: map[netip.Addr]struct{}{}}
}

// Exporters is the number of distinct exporter addresses seen.
func (d *Decoder) Exporters() int { return len(d.exporters) }

// Session is the state of one exporter session, for status pages.
type Session struct {
	Exporter  netip.Addr
	Version   uint16
	Domain    uint32
	Templates int
	Gaps      uint64
}

// Sessions lists the sessions known.
func (d *Decoder) Sessions() []Session {
	out := make([]Session, 0, len(d.sessions))
	for k, s := range d.sessions {
		out = append(out, Session{Exporter: k.exporter, Version: k.version, Domain: k.domain, Templates: len(s.templates), Gaps: s.gaps})
	}
	return out
}

// Decode decodes one export packet (a UDP payload) received from exporter at time now, and calls emit
// for every flow record in it. The Record passed to emit is reused: copy it to keep it. now is the
// arrival time (the capture time when reading a file); it drives template expiry only. A packet refused
// as a whole returns an error wrapping ErrMalformed or ErrSessions; errors inside sets are counted in
// Stats and the rest of the packet is still read.
func (d *Decoder) Decode(exporter netip.Addr, pkt []byte, now time.Time, emit func(*Record)) error {
	d.Stats.Packets++
	exporter = exporter.Unmap()
	if len(pkt) < 2 {
		d.Stats.Malformed++
		return ErrMalformed
	}
	var err error
	switch v := binary.BigEndian.Uint16(pkt); v {
	case 5:
		err = d.decodeV5(exporter, pkt, emit)
	case 9:
		err = d.decodeV9(exporter, pkt, now, emit)
	case 10:
		err = d.decodeIPFIX(exporter, pkt, now, emit)
	default:
		err = ErrMalformed
	}
	if errors.Is(err, ErrMalformed) {
		d.Stats.Malformed++
	}
	return err
}

// session finds or makes the session of key; nil when MaxSessions are already kept.
func (d *Decoder) session(k sessionKey) *session {
	s := d.sessions[k]
	if s == nil {
		if len(d.sessions) >= d.cfg.MaxSessions {
			d.Stats.SessionsRefused++
			return nil
		}
		s = &session{templates: map[uint16]*template{}}
		d.sessions[k] = s
		d.exporters[k.exporter] = struct{}{}
	}
	return s
}

// sequence checks a packet's sequence number against the one expected and returns the units lost in
// between. seq is where this packet starts, n the units it carries. A number behind the expected one
// (reordering, a duplicate, an exporter restart) loses nothing and restarts the count from there.
func (d *Decoder) sequence(s *session, seq, n uint32) {
	if s.haveSeq {
		if lost := seq - s.nextSeq; lost != 0 {
			d.Stats.SequenceErrors++
			if lost < 1<<31 {
				s.gaps += uint64(lost)
				d.Stats.SequenceGaps += uint64(lost)
			}
		}
	}
	s.haveSeq, s.nextSeq = true, seq+n
}

// v5: a 24-byte header and up to 30 records of 48 bytes.
const (
	v5Header = 24
	v5Record = 48
)

func (d *Decoder) decodeV5(exporter netip.Addr, pkt []byte, emit func(*Record)) error {
	if len(pkt) < v5Header {
		return ErrMalformed
	}
	count := int(binary.BigEndian.Uint16(pkt[2:]))
	if count == 0 || count > 30 || len(pkt) < v5Header+count*v5Record {
		return ErrMalformed
	}
	uptime := binary.BigEndian.Uint32(pkt[4:])
	now := time.Unix(int64(binary.BigEndian.Uint32(pkt[8:])), int64(binary.BigEndian.Uint32(pkt[12:])))
	seq := binary.BigEndian.Uint32(pkt[16:])
	domain := uint32(pkt[20])<<8 | uint32(pkt[21])
	s := d.session(sessionKey{exporter, 5, domain})
	if s == nil {
		return ErrSessions
	}
	d.sequence(s, seq, uint32(count))
	var r Record
	for i := range count {
		b := pkt[v5Header+i*v5Record:]
		r = Record{
			Exporter: exporter, Version: 5, Domain: domain,
			SrcAddr: netip.AddrFrom4([4]byte(b[0:4])), DstAddr: netip.AddrFrom4([4]byte(b[4:8])),
			Input: uint32(binary.BigEndian.Uint16(b[12:])), Output: uint32(binary.BigEndian.Uint16(b[14:])),
			Packets: uint64(binary.BigEndian.Uint32(b[16:])), Bytes: uint64(binary.BigEndian.Uint32(b[20:])),
			Start:   uptimeTime(now, uptime, binary.BigEndian.Uint32(b[24:])),
			End:     uptimeTime(now, uptime, binary.BigEndian.Uint32(b[28:])),
			SrcPort: binary.BigEndian.Uint16(b[32:]), DstPort: binary.BigEndian.Uint16(b[34:]),
			TCPFlags: b[37], Proto: b[38], ToS: b[39],
		}
		d.Stats.Records++
		emit(&r)
	}
	return nil
}

// uptimeTime converts an exporter's sysUpTime reading (milliseconds since it booted) into wall time,
// given the wall time and uptime of the export packet. The difference is taken modulo 2^32 as a signed
// number: an uptime counter wraps after 49.7 days, and a flow time ahead of the header's (softflowd
// reading a file does that) stays ahead rather than becoming a 49-day-old past.
func uptimeTime(now time.Time, nowUptime, at uint32) time.Time {
	back := int64(int32(nowUptime - at))
	return now.Add(-time.Duration(back) * time.Millisecond).UTC()
}
