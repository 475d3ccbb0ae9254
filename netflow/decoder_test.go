package netflow

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// Packets built by hand after RFC 3954 and RFC 7011, for the cases real exporters rarely show on
// demand: gaps, a data set before its template, expiry, broken sets. The oracle tests (softflowd,
// nfcapd, tshark) cover what real exporters send.

type buf []byte

func (b buf) u8(v uint8) buf   { return append(b, v) }
func (b buf) u16(v uint16) buf { return binary.BigEndian.AppendUint16(b, v) }
func (b buf) u32(v uint32) buf { return binary.BigEndian.AppendUint32(b, v) }
func (b buf) u64(v uint64) buf { return binary.BigEndian.AppendUint64(b, v) }
func (b buf) ip(s string) buf  { a := netip.MustParseAddr(s); return append(b, a.AsSlice()...) }

// set wraps body as a set with its id and length.
func set(id uint16, body buf) buf { return buf{}.u16(id).u16(uint16(4 + len(body))).append(body) }

func (b buf) append(o buf) buf { return append(b, o...) }

var exp = netip.MustParseAddr("192.0.2.1")

func v5Packet(seq uint32, n int) buf {
	b := buf{}.u16(5).u16(uint16(n)).u32(10_000).u32(1_700_000_000).u32(0).u32(seq).u8(0).u8(1).u16(0)
	for i := range n {
		b = b.ip("10.0.0.1").ip("10.0.0.2").ip("0.0.0.0").u16(1).u16(2).u32(3).u32(300).u32(9_000).u32(9_500)
		b = b.u16(1000 + uint16(i)).u16(80).u8(0).u8(0x1b).u8(6).u8(0).u16(0).u16(0).u8(0).u8(0).u16(0)
	}
	return b
}

func v9Header(seq uint32, uptime uint32) buf {
	return buf{}.u16(9).u16(1).u32(uptime).u32(1_700_000_000).u32(seq).u32(7)
}

// v9 template 256: src, dst (IPv4), ports, proto, packets, bytes, first and last switched.
var v9Template = set(0, buf{}.u16(256).u16(9).
	u16(8).u16(4).u16(12).u16(4).u16(7).u16(2).u16(11).u16(2).u16(4).u16(1).
	u16(2).u16(4).u16(1).u16(4).u16(22).u16(4).u16(21).u16(4))

func v9Data() buf {
	return set(256, buf{}.ip("10.1.1.1").ip("10.1.1.2").u16(5353).u16(53).u8(17).u32(2).u32(140).u32(4_000).u32(5_000).
		append(buf{0, 0, 0})) // padding to 32 bits
}

func decodeAll(t *testing.T, d *Decoder, now time.Time, pkts ...buf) []Record {
	t.Helper()
	var out []Record
	for _, p := range pkts {
		d.Decode(exp, p, now, func(r *Record) { out = append(out, *r) })
	}
	return out
}

func TestV5RecordsTimesAndGaps(t *testing.T) {
	d := NewDecoder(Config{})
	now := time.Unix(1_700_000_000, 0)
	recs := decodeAll(t, d, now, v5Packet(0, 2), v5Packet(2, 1), v5Packet(6, 3))
	if len(recs) != 6 {
		t.Fatalf("%d records, want 6", len(recs))
	}
	r := recs[0]
	if r.SrcAddr.String() != "10.0.0.1" || r.DstPort != 80 || r.SrcPort != 1000 || r.Proto != 6 || r.Packets != 3 || r.Bytes != 300 || r.TCPFlags != 0x1b || r.Domain != 1 {
		t.Errorf("record %+v", r)
	}
	// Uptime 10 s at export; the flow ran from uptime 9 s to 9.5 s.
	if !r.Start.Equal(now.Add(-time.Second)) || !r.End.Equal(now.Add(-500*time.Millisecond)) {
		t.Errorf("times %s .. %s", r.Start, r.End)
	}
	// 0+2 = 2 expected and seen; 2+1 = 3 expected, 6 seen: 3 flows lost.
	if d.Stats.SequenceGaps != 3 || d.Stats.SequenceErrors != 1 {
		t.Errorf("gaps %d errors %d, want 3 and 1", d.Stats.SequenceGaps, d.Stats.SequenceErrors)
	}
}

func TestV9DataBeforeTemplateAndPacketGaps(t *testing.T) {
	d := NewDecoder(Config{})
	now := time.Unix(1_700_000_000, 0)
	recs := decodeAll(t, d, now,
		v9Header(1, 10_000).append(v9Data()),         // no template yet: counted, skipped
		v9Header(2, 10_000).append(v9Template),       // template
		v9Header(5, 10_000).append(v9Data()),         // packets 3 and 4 lost
		v9Header(6, 10_000).append(set(300, buf{1})), // unknown template 300
	)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.SrcAddr.String() != "10.1.1.1" || r.DstAddr.String() != "10.1.1.2" || r.SrcPort != 5353 || r.DstPort != 53 ||
		r.Proto != 17 || r.Packets != 2 || r.Bytes != 140 || r.Domain != 7 || r.Version != 9 {
		t.Errorf("record %+v", r)
	}
	if want := time.Unix(1_700_000_000-6, 0).UTC(); !r.Start.Equal(want) || !r.End.Equal(want.Add(time.Second)) {
		t.Errorf("times %s .. %s, want start %s", r.Start, r.End, want)
	}
	if d.Stats.TemplateErrors != 2 || d.Stats.SequenceGaps != 2 || d.Stats.Templates != 1 {
		t.Errorf("stats %+v", d.Stats)
	}
}

func ipfixMessage(seq, domain uint32, sets ...buf) buf {
	var body buf
	for _, s := range sets {
		body = body.append(s)
	}
	return buf{}.u16(10).u16(uint16(16 + len(body))).u32(1_700_000_000).u32(seq).u32(domain).append(body)
}

// IPFIX template 400: IPv6 addresses, an enterprise field, a variable-length field, reduced-size
// octet count (2 octets), flowStartMilliseconds, flowEndSysUpTime (needs systemInitTimeMilliseconds).
var ipfixTemplate = set(2, buf{}.u16(400).u16(7).
	u16(27).u16(16).u16(28).u16(16).
	u16(0x8000|100).u16(4).u32(9).
	u16(82).u16(0xffff).
	u16(1).u16(2).
	u16(152).u16(8).
	u16(21).u16(4))

// Options template 401 with systemInitTimeMilliseconds.
var ipfixOptions = set(3, buf{}.u16(401).u16(2).u16(1).u16(149).u16(4).u16(160).u16(8))

func TestIPFIXFieldsOptionsAndExpiry(t *testing.T) {
	d := NewDecoder(Config{TemplateTimeout: time.Minute})
	t0 := time.Unix(1_700_000_000, 0)
	data := set(400, buf{}.ip("2001:db8::1").ip("2001:db8::2").u32(0xdead).u8(4).append(buf("eth0")).
		u16(1500).u64(1_699_999_990_250).u32(3_000))
	opt := set(401, buf{}.u32(1).u64(1_699_999_000_000))
	recs := decodeAll(t, d, t0, ipfixMessage(0, 3, ipfixTemplate, ipfixOptions, opt, data))
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1 (stats %+v)", len(recs), d.Stats)
	}
	r := recs[0]
	if r.SrcAddr.String() != "2001:db8::1" || r.DstAddr.String() != "2001:db8::2" || r.Bytes != 1500 || r.Domain != 3 {
		t.Errorf("record %+v", r)
	}
	if !r.Start.Equal(time.UnixMilli(1_699_999_990_250)) || !r.End.Equal(time.UnixMilli(1_699_999_003_000)) {
		t.Errorf("times %s .. %s", r.Start, r.End)
	}
	// Two data records (one options, one flow) in message 0: the next starts at 2.
	decodeAll(t, d, t0.Add(30*time.Second), ipfixMessage(2, 3, data))
	if d.Stats.SequenceErrors != 0 || d.Stats.Records != 2 {
		t.Fatalf("stats after a second message %+v", d.Stats)
	}
	// Past the timeout the template is gone: the data set is an error and the sequence jump (5 for 3)
	// counts two lost records.
	recs = decodeAll(t, d, t0.Add(2*time.Minute), ipfixMessage(5, 3, data))
	if len(recs) != 0 || d.Stats.Expired != 1 || d.Stats.TemplateErrors != 1 || d.Stats.SequenceGaps != 2 {
		t.Errorf("after expiry: %d records, stats %+v", len(recs), d.Stats)
	}
	// Another domain of the same exporter has templates of its own.
	decodeAll(t, d, t0, ipfixMessage(0, 4, data))
	if d.Stats.TemplateErrors != 2 {
		t.Errorf("domain 4 used domain 3's template: %+v", d.Stats)
	}
}

func TestIPFIXWithdrawal(t *testing.T) {
	d := NewDecoder(Config{})
	t0 := time.Unix(1_700_000_000, 0)
	decodeAll(t, d, t0, ipfixMessage(0, 1, ipfixTemplate), ipfixMessage(0, 1, set(2, buf{}.u16(400).u16(0))))
	if s := d.Sessions(); len(s) != 1 || s[0].Templates != 0 {
		t.Errorf("sessions after withdrawal: %+v", s)
	}
}

func TestMalformedIsCountedNotFatal(t *testing.T) {
	d := NewDecoder(Config{})
	now := time.Unix(1_700_000_000, 0)
	for _, p := range []buf{
		{}, {0}, {0, 5}, buf{}.u16(5).u16(31), buf{}.u16(7).u16(1),
		ipfixMessage(0, 1).append(buf{1})[:15],                          // shorter than its header
		v9Header(1, 0).append(buf{1, 0, 0, 200}),                        // a set longer than the packet
		v9Header(2, 0).append(set(0, buf{}.u16(256).u16(0))),            // a template of no fields
		ipfixMessage(0, 1, set(2, buf{}.u16(300).u16(1).u16(1).u16(0))), // records of no bytes
	} {
		decodeAll(t, d, now, p)
	}
	if d.Stats.Malformed != 6 || d.Stats.TemplateErrors != 3 || d.Stats.Records != 0 {
		t.Errorf("stats %+v", d.Stats)
	}
}

func TestSessionBound(t *testing.T) {
	d := NewDecoder(Config{MaxSessions: 2})
	now := time.Unix(1_700_000_000, 0)
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		d.Decode(netip.MustParseAddr(a), v5Packet(0, 1), now, func(*Record) {})
	}
	if d.Stats.SessionsRefused != 1 || d.Exporters() != 2 || d.Stats.Records != 2 {
		t.Errorf("stats %+v exporters %d", d.Stats, d.Exporters())
	}
}
