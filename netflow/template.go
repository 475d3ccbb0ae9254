package netflow

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// variableLength in a template says the field's length is given in each record (IPFIX only).
const variableLength = 0xffff

type field struct {
	id         uint16
	length     uint16
	enterprise uint32 // 0 for IANA's elements
}

type template struct {
	fields []field
	// scope is the number of leading scope fields of an options template; options templates describe
	// exporter metadata, not flows.
	scope    int
	options  bool
	minLen   int // the shortest record: fixed lengths plus one byte per variable-length field
	received time.Time
}

func newTemplate(fields []field, options bool, scope int, now time.Time) (*template, bool) {
	t := &template{fields: fields, options: options, scope: scope, received: now}
	for _, f := range fields {
		if f.length == variableLength {
			t.minLen++
		} else {
			t.minLen += int(f.length)
		}
	}
	// A record of no bytes would never end a data set.
	return t, t.minLen > 0
}

// Information element IDs (IANA IPFIX registry; v9 shares 1-127 with the same meaning).
const (
	ieOctetDelta    = 1
	iePacketDelta   = 2
	ieProtocol      = 4
	ieToS           = 5
	ieTCPFlags      = 6
	ieSrcPort       = 7
	ieSrcIPv4       = 8
	ieInput         = 10
	ieDstPort       = 11
	ieDstIPv4       = 12
	ieOutput        = 14
	ieEndUptime     = 21
	ieStartUptime   = 22
	ieSrcIPv6       = 27
	ieDstIPv6       = 28
	ieICMPv4        = 32
	ieOctetTotal    = 85
	iePacketTotal   = 86
	ieICMPv6        = 139
	ieStartSec      = 150
	ieEndSec        = 151
	ieStartMilli    = 152
	ieEndMilli      = 153
	ieStartMicro    = 154
	ieEndMicro      = 155
	ieStartNano     = 156
	ieEndNano       = 157
	ieStartDeltaUs  = 158
	ieEndDeltaUs    = 159
	ieSysInitMillis = 160
)

// header is what a data record's times are relative to.
type header struct {
	version    uint16
	exportTime time.Time // unix seconds of the packet header
	uptime     uint32    // v9 only: the exporter's sysUpTime at export, in milliseconds
}

// readTemplates reads a template set (v9 set 0, IPFIX set 2) or an options template set (v9 set 1,
// IPFIX set 3) into s. It returns false on a malformed set (counted by the caller).
func (d *Decoder) readTemplates(s *session, version, setID uint16, b []byte, now time.Time) bool {
	options := setID == 1 || setID == 3
	for {
		// What is left is padding when it cannot hold a template header.
		if len(b) < 4 || (options && version == 9 && len(b) < 6) {
			return true
		}
		id := binary.BigEndian.Uint16(b)
		var nfields, scope int
		var ok bool
		var fields []field
		switch {
		case version == 9 && !options:
			nfields = int(binary.BigEndian.Uint16(b[2:]))
			b = b[4:]
			fields, b, ok = readFields(b, nfields, false)
		case version == 9:
			scopeLen, optLen := int(binary.BigEndian.Uint16(b[2:])), int(binary.BigEndian.Uint16(b[4:]))
			if scopeLen%4 != 0 || optLen%4 != 0 {
				return false
			}
			scope, nfields = scopeLen/4, (scopeLen+optLen)/4
			b = b[6:]
			fields, b, ok = readFields(b, nfields, false)
		default:
			nfields = int(binary.BigEndian.Uint16(b[2:]))
			b = b[4:]
			if nfields == 0 { // IPFIX withdrawal: 2 is all templates of the set type, others one
				if id == 2 || id == 3 {
					for tid, t := range s.templates {
						if t.options == (id == 3) {
							delete(s.templates, tid)
						}
					}
				} else {
					delete(s.templates, id)
				}
				continue
			}
			if options {
				if len(b) < 2 {
					return false
				}
				scope = int(binary.BigEndian.Uint16(b))
				b = b[2:]
				if scope == 0 || scope > nfields {
					return false
				}
			}
			fields, b, ok = readFields(b, nfields, true)
		}
		if !ok || id < 256 || nfields == 0 || nfields > maxFieldsPerTemplate {
			return false
		}
		t, ok := newTemplate(fields, options, scope, now)
		if !ok {
			return false
		}
		if _, known := s.templates[id]; !known && len(s.templates) >= maxTemplatesPerSession {
			return false
		}
		s.templates[id] = t
		d.Stats.Templates++
	}
}

// readFields reads n field specifiers; IPFIX ones may carry an enterprise number.
func readFields(b []byte, n int, ipfix bool) ([]field, []byte, bool) {
	if n > maxFieldsPerTemplate || len(b) < 4*n {
		return nil, b, false
	}
	fields := make([]field, 0, n)
	for range n {
		if len(b) < 4 {
			return nil, b, false
		}
		f := field{id: binary.BigEndian.Uint16(b), length: binary.BigEndian.Uint16(b[2:])}
		b = b[4:]
		if ipfix && f.id&0x8000 != 0 {
			if len(b) < 4 {
				return nil, b, false
			}
			f.id &^= 0x8000
			f.enterprise = binary.BigEndian.Uint32(b)
			b = b[4:]
		}
		if !ipfix && f.length == variableLength {
			return nil, b, false // v9 has no variable-length fields
		}
		fields = append(fields, f)
	}
	return fields, b, true
}

// template returns the live template id of s, forgetting it when it has expired.
func (d *Decoder) template(s *session, id uint16, now time.Time) *template {
	t := s.templates[id]
	if t == nil {
		return nil
	}
	if d.cfg.TemplateTimeout > 0 && now.Sub(t.received) > d.cfg.TemplateTimeout {
		delete(s.templates, id)
		d.Stats.Expired++
		return nil
	}
	return t
}

// readData reads the records of a data set with template t, emitting flows, and returns how many data
// records it read and false when the set ended inside a record.
func (d *Decoder) readData(s *session, t *template, h *header, k *sessionKey, b []byte, emit func(*Record)) (int, bool) {
	n := 0
	var r Record
	for len(b) >= t.minLen {
		var ok bool
		r = Record{Exporter: k.exporter, Version: k.version, Domain: k.domain}
		b, ok = d.readRecord(s, t, h, b, &r)
		if !ok {
			return n, false
		}
		n++
		if t.options {
			d.Stats.OptionRecords++
			continue
		}
		d.Stats.Records++
		emit(&r)
	}
	return n, true
}

// times gathers the time fields of one record before they are resolved.
type times struct {
	start, end           time.Time
	startUp, endUp       uint32
	haveUp               bool
	startDelta, endDelta uint64
	haveDelta            bool
	sysInit              time.Time
}

func (d *Decoder) readRecord(s *session, t *template, h *header, b []byte, r *Record) ([]byte, bool) {
	var tm times
	var octetTotal, packetTotal uint64
	var icmp uint16
	for i, f := range t.fields {
		l := int(f.length)
		if f.length == variableLength {
			if len(b) < 1 {
				return b, false
			}
			l, b = int(b[0]), b[1:]
			if l == 255 {
				if len(b) < 2 {
					return b, false
				}
				l, b = int(binary.BigEndian.Uint16(b)), b[2:]
			}
		}
		if len(b) < l {
			return b, false
		}
		v := b[:l]
		b = b[l:]
		if f.enterprise != 0 || (t.options && i < t.scope) {
			continue
		}
		if t.options {
			if f.id == ieSysInitMillis && l == 8 {
				s.sysInit = time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC()
			}
			continue
		}
		switch f.id {
		case ieOctetDelta:
			r.Bytes = uintOf(v)
		case iePacketDelta:
			r.Packets = uintOf(v)
		case ieOctetTotal:
			octetTotal = uintOf(v)
		case iePacketTotal:
			packetTotal = uintOf(v)
		case ieProtocol:
			r.Proto = uint8(uintOf(v))
		case ieToS:
			r.ToS = uint8(uintOf(v))
		case ieTCPFlags: // one or two octets (RFC 7125); NetFlow keeps the low eight bits
			r.TCPFlags = uint8(uintOf(v))
		case ieSrcPort:
			r.SrcPort = uint16(uintOf(v))
		case ieDstPort:
			r.DstPort = uint16(uintOf(v))
		case ieICMPv4, ieICMPv6:
			icmp = uint16(uintOf(v))
		case ieInput:
			r.Input = uint32(uintOf(v))
		case ieOutput:
			r.Output = uint32(uintOf(v))
		case ieSrcIPv4, ieSrcIPv6:
			if a, ok := netip.AddrFromSlice(v); ok && (l == 4 || l == 16) {
				r.SrcAddr = a
			}
		case ieDstIPv4, ieDstIPv6:
			if a, ok := netip.AddrFromSlice(v); ok && (l == 4 || l == 16) {
				r.DstAddr = a
			}
		case ieStartUptime:
			tm.startUp, tm.haveUp = uint32(uintOf(v)), true
		case ieEndUptime:
			tm.endUp, tm.haveUp = uint32(uintOf(v)), true
		case ieStartSec:
			tm.start = time.Unix(int64(uintOf(v)), 0)
		case ieEndSec:
			tm.end = time.Unix(int64(uintOf(v)), 0)
		case ieStartMilli:
			tm.start = time.UnixMilli(int64(uintOf(v)))
		case ieEndMilli:
			tm.end = time.UnixMilli(int64(uintOf(v)))
		case ieStartMicro, ieStartNano:
			tm.start = ntpTime(v)
		case ieEndMicro, ieEndNano:
			tm.end = ntpTime(v)
		case ieStartDeltaUs:
			tm.startDelta, tm.haveDelta = uintOf(v), true
		case ieEndDeltaUs:
			tm.endDelta, tm.haveDelta = uintOf(v), true
		case ieSysInitMillis:
			tm.sysInit = time.UnixMilli(int64(uintOf(v)))
		}
	}
	if t.options {
		return b, true
	}
	if r.Bytes == 0 {
		r.Bytes = octetTotal
	}
	if r.Packets == 0 {
		r.Packets = packetTotal
	}
	// ICMP type and code go where NetFlow v5 and nfdump put them: the destination port.
	if icmp != 0 && r.DstPort == 0 {
		r.DstPort = icmp
	}
	d.resolveTimes(s, h, &tm, r)
	return b, true
}

// resolveTimes turns whichever time fields a record had into absolute times: absolute fields first,
// then deltas from the export time, then sysUpTime offsets (from the v9 header's uptime, or from the
// IPFIX exporter's systemInitTimeMilliseconds). A record with none gets the export time.
func (d *Decoder) resolveTimes(s *session, h *header, tm *times, r *Record) {
	init := tm.sysInit
	if init.IsZero() {
		init = s.sysInit
	}
	// Each end is resolved on its own: an exporter may send an absolute start and a relative end.
	resolve := func(abs time.Time, delta uint64, up uint32) time.Time {
		switch {
		case !abs.IsZero():
			return abs
		case tm.haveDelta:
			return h.exportTime.Add(-time.Duration(delta) * time.Microsecond)
		case tm.haveUp && h.version == 9:
			return uptimeTime(h.exportTime, h.uptime, up)
		case tm.haveUp && !init.IsZero():
			return init.Add(time.Duration(up) * time.Millisecond)
		}
		return time.Time{}
	}
	tm.start = resolve(tm.start, tm.startDelta, tm.startUp)
	tm.end = resolve(tm.end, tm.endDelta, tm.endUp)
	if tm.start.IsZero() {
		tm.start = h.exportTime
	}
	if tm.end.IsZero() {
		tm.end = tm.start
	}
	r.Start, r.End = tm.start.UTC(), tm.end.UTC()
}

// uintOf reads an unsigned integer of 1 to 8 octets (IPFIX reduced-size encoding); longer values keep
// their last eight.
func uintOf(v []byte) uint64 {
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x
}

// ntpTime reads an RFC 5905 timestamp (seconds since 1900, then a binary fraction), as IPFIX's
// dateTimeMicroseconds and dateTimeNanoseconds are encoded.
func ntpTime(v []byte) time.Time {
	if len(v) != 8 {
		return time.Time{}
	}
	const ntpToUnix = 2208988800
	sec := int64(binary.BigEndian.Uint32(v)) - ntpToUnix
	frac := uint64(binary.BigEndian.Uint32(v[4:]))
	return time.Unix(sec, int64(frac*1e9>>32))
}

// decodeV9 reads a NetFlow v9 packet: a 20-byte header, then flowsets.
func (d *Decoder) decodeV9(exporter netip.Addr, pkt []byte, now time.Time, emit func(*Record)) error {
	if len(pkt) < 20 {
		return ErrMalformed
	}
	h := header{version: 9, uptime: binary.BigEndian.Uint32(pkt[4:]), exportTime: time.Unix(int64(binary.BigEndian.Uint32(pkt[8:])), 0)}
	seq := binary.BigEndian.Uint32(pkt[12:])
	k := sessionKey{exporter, 9, binary.BigEndian.Uint32(pkt[16:])}
	s := d.session(k)
	if s == nil {
		return ErrSessions
	}
	d.sequence(s, seq, 1)
	d.readSets(s, &h, &k, pkt[20:], now, emit)
	return nil
}

// decodeIPFIX reads an IPFIX message: a 16-byte header whose length bounds the sets after it.
func (d *Decoder) decodeIPFIX(exporter netip.Addr, pkt []byte, now time.Time, emit func(*Record)) error {
	if len(pkt) < 16 {
		return ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(pkt[2:]))
	if n < 16 || n > len(pkt) {
		return ErrMalformed
	}
	pkt = pkt[:n]
	h := header{version: 10, exportTime: time.Unix(int64(binary.BigEndian.Uint32(pkt[4:])), 0)}
	seq := binary.BigEndian.Uint32(pkt[8:])
	k := sessionKey{exporter, 10, binary.BigEndian.Uint32(pkt[12:])}
	s := d.session(k)
	if s == nil {
		return ErrSessions
	}
	// The sequence number counts data records (options ones included) sent before this message.
	records := d.readSets(s, &h, &k, pkt[16:], now, emit)
	d.sequence(s, seq, uint32(records))
	return nil
}

// readSets walks the sets of a v9 or IPFIX packet and returns the data records read. A set whose
// length is impossible ends the walk: nothing after it can be framed.
func (d *Decoder) readSets(s *session, h *header, k *sessionKey, b []byte, now time.Time, emit func(*Record)) int {
	records := 0
	for len(b) > 0 {
		if len(b) < 4 {
			d.Stats.TemplateErrors++
			return records
		}
		id, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			d.Stats.TemplateErrors++
			return records
		}
		body := b[4:l]
		b = b[l:]
		switch {
		case (h.version == 9 && id <= 1) || (h.version == 10 && (id == 2 || id == 3)):
			if !d.readTemplates(s, h.version, id, body, now) {
				d.Stats.TemplateErrors++
			}
		case id < 256: // reserved set IDs
			d.Stats.TemplateErrors++
		default:
			t := d.template(s, id, now)
			if t == nil {
				d.Stats.TemplateErrors++
				continue
			}
			n, ok := d.readData(s, t, h, k, body, emit)
			records += n
			if !ok {
				d.Stats.TemplateErrors++
			}
		}
	}
	return records
}
