// Package packetrecord is the Kafka record format of captured packets: one
// record per packet, Apache Metron's raw-packet convention for key and value,
// and headers for what that key cannot carry.
package packetrecord

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

// Header names carried by every record.
const (
	HeaderTimestampNanos = "ts_ns"
	HeaderNode           = "node"
	HeaderInterface      = "iface"
	HeaderLinkType       = "linktype"
	HeaderOrigLen        = "origlen"
)

// KeyLen is the size of the Metron key.
const KeyLen = 8

// Meta is what a record says about its frame.
type Meta struct {
	Timestamp time.Time
	Node      string
	Interface string
	LinkType  linktype.Type
	OrigLen   int
}

// Encode builds the record of one captured frame. The frame is copied, so the
// caller may hand in a slice into a capture ring or a reader's reusable buffer.
//
// The key follows Apache Metron's pycapa producer, which consumers of the
// Metron pcap backend expect: the capture time in microseconds since the epoch,
// packed as an unsigned 64-bit big-endian integer (pycapa/producer.py computes
// epoch_secs*1000000 + delta_micros; pycapa/common.py pack_ts uses
// struct.pack(">Q", ts); apache/metron, metron-sensors/pycapa). Times before
// the epoch, which no capture file can hold, are clamped to 0 in the key; the
// ts_ns header keeps the exact value.
//
// Record.Timestamp is left to the producer (the time of producing): setting it
// to the capture time would let time-based retention delete replays of old
// captures the moment they land.
func Encode(m Meta, frame []byte) *kgo.Record {
	// One backing array for key, header values and frame: a record costs three
	// allocations (this buffer, the headers, the record) whatever its size.
	buf := make([]byte, 0, KeyLen+len(frame)+len(m.Node)+len(m.Interface)+3*20)
	buf = binary.BigEndian.AppendUint64(buf, metronKey(m.Timestamp))
	key := buf[:KeyLen:KeyLen]

	start := len(buf)
	buf = strconv.AppendInt(buf, m.Timestamp.UnixNano(), 10)
	tsNS := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = append(buf, m.Node...)
	node := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = append(buf, m.Interface...)
	iface := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = strconv.AppendUint(buf, uint64(m.LinkType), 10)
	lt := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = strconv.AppendInt(buf, int64(m.OrigLen), 10)
	orig := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = append(buf, frame...)
	value := buf[start:len(buf):len(buf)]

	return &kgo.Record{
		Key:   key,
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderTimestampNanos, Value: tsNS},
			{Key: HeaderNode, Value: node},
			{Key: HeaderInterface, Value: iface},
			{Key: HeaderLinkType, Value: lt},
			{Key: HeaderOrigLen, Value: orig},
		},
	}
}

func metronKey(t time.Time) uint64 {
	us := t.UnixMicro()
	if us < 0 {
		return 0
	}
	return uint64(us)
}

// Decode reads a record back. Records written by Metron's own probes carry
// only the key: those decode with the key's microsecond time, an Ethernet
// link type and OrigLen equal to the frame length. The returned frame aliases
// the record's value.
func Decode(r *kgo.Record) (Meta, []byte, error) {
	var d Decoder
	return d.Decode(r)
}

// Decoder decodes records like Decode, keeping the node and interface names of the last record: a
// partition's records come from a few sensor interfaces, so the names are not copied per record.
type Decoder struct {
	node, iface string
}

// Decode is Decode with the names of earlier records reused.
func (d *Decoder) Decode(r *kgo.Record) (Meta, []byte, error) {
	var m Meta
	if len(r.Key) != KeyLen {
		return m, nil, fmt.Errorf("packet record at %s/%d@%d: key is %d bytes, want %d (Metron timestamp)",
			r.Topic, r.Partition, r.Offset, len(r.Key), KeyLen)
	}
	m.Timestamp = time.UnixMicro(int64(binary.BigEndian.Uint64(r.Key)))
	m.LinkType = linktype.Ethernet
	m.OrigLen = len(r.Value)
	for _, h := range r.Headers {
		var err error
		switch h.Key {
		case HeaderTimestampNanos:
			var ns int64
			ns, err = parseInt(h.Value, 64)
			m.Timestamp = time.Unix(0, ns)
		case HeaderNode:
			if string(h.Value) != d.node {
				d.node = string(h.Value)
			}
			m.Node = d.node
		case HeaderInterface:
			if string(h.Value) != d.iface {
				d.iface = string(h.Value)
			}
			m.Interface = d.iface
		case HeaderLinkType:
			m.LinkType, err = parseLinkType(h.Value)
		case HeaderOrigLen:
			var n int64
			n, err = parseInt(h.Value, 32)
			if err == nil && n < int64(len(r.Value)) {
				err = fmt.Errorf("shorter than the %d-byte frame", len(r.Value))
			}
			m.OrigLen = int(n)
		}
		if err != nil {
			return Meta{}, nil, fmt.Errorf("packet record at %s/%d@%d: header %s=%q: %w",
				r.Topic, r.Partition, r.Offset, h.Key, h.Value, err)
		}
	}
	return m, r.Value, nil
}

// parseLinkType reads the linktype header: the LINKTYPE_ value in decimal. Records written when the
// link type was 8 bits carry the same text, so they read unchanged; only values up to 2^32-1 are link
// types.
func parseLinkType(v []byte) (linktype.Type, error) {
	if n, ok := parseDigits(v); ok && n <= math.MaxUint32 {
		return linktype.Type(n), nil
	}
	lt, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("not a 32-bit decimal link type: %w", err)
	}
	return linktype.Type(lt), nil
}

// parseInt is strconv.ParseInt(string(v), 10, bits) with a fast path for what producers write (plain
// digits): strconv's generality costs more than the rest of a record's decoding.
func parseInt(v []byte, bits int) (int64, error) {
	if n, ok := parseDigits(v); ok && n <= 1<<(bits-1)-1 {
		return int64(n), nil
	}
	return strconv.ParseInt(string(v), 10, bits)
}

// parseDigits reads 1 to 19 decimal digits, which cannot overflow 64 bits; anything else is left to strconv.
func parseDigits(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
