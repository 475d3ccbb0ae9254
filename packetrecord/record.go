// Package packetrecord is the Kafka record format of captured packets: one
// record per packet, Apache Metron's raw-packet convention for key and value,
// and headers for what that key cannot carry.
package packetrecord

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

// HeaderMeta is the one header capfleet writes: the metadata in binary (see Encode).
const HeaderMeta = "cf"

// metaVersion is the first byte of a HeaderMeta value.
const metaVersion = 1

// Header names of the text encoding that records written before HeaderMeta carry, one value per header
// in decimal or plain text. Decode still reads them.
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
// metadata keeps the exact value.
//
// What the key cannot say goes in one header, HeaderMeta: a version byte (1),
// then the capture time in ns since the epoch (zigzag varint), the link type,
// the original length (unsigned varints), the node and the interface (each a
// length varint and its bytes). One header instead of five text ones: a
// consumer decodes every header key into a string and every header into a
// slice element, per record, and five keys and decimal values also cost about
// 45 bytes a record on the wire.
//
// Record.Timestamp is left to the producer (the time of producing): setting it
// to the capture time would let time-based retention delete replays of old
// captures the moment they land.
func Encode(m Meta, frame []byte) *kgo.Record {
	// One backing array for key, metadata and frame: a record costs three allocations (this buffer,
	// the headers, the record) whatever its size. A Pool's Writer reuses all three.
	r := &kgo.Record{Headers: make([]kgo.RecordHeader, 1)}
	EncodeInto(r, make([]byte, 0, encodedLen(m, frame)), m, frame)
	return r
}

// EncodeInto is Encode into r and buf: the key, metadata and frame are appended to buf, which is
// returned, and r's Key, Value and first header point into it (r.Headers must have room for one).
// Nothing is allocated when buf has encodedLen(m, frame) bytes to spare.
func EncodeInto(r *kgo.Record, buf []byte, m Meta, frame []byte) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, metronKey(m.Timestamp))
	r.Key = buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = appendMeta(buf, m)
	meta := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = append(buf, frame...)
	r.Value = buf[start:len(buf):len(buf)]
	r.Headers = append(r.Headers[:0], kgo.RecordHeader{Key: HeaderMeta, Value: meta})
	return buf
}

// encodedLen is the most EncodeInto appends for m and frame.
func encodedLen(m Meta, frame []byte) int {
	return KeyLen + len(frame) + len(m.Node) + len(m.Interface) + 1 + 5*binary.MaxVarintLen64
}

func appendMeta(b []byte, m Meta) []byte {
	b = append(b, metaVersion)
	b = binary.AppendVarint(b, m.Timestamp.UnixNano())
	b = binary.AppendUvarint(b, uint64(m.LinkType))
	b = binary.AppendUvarint(b, uint64(m.OrigLen))
	b = binary.AppendUvarint(b, uint64(len(m.Node)))
	b = append(b, m.Node...)
	b = binary.AppendUvarint(b, uint64(len(m.Interface)))
	return append(b, m.Interface...)
}

// metaFields splits a HeaderMeta value without allocating; node and iface alias v.
func metaFields(v []byte) (ns int64, lt, origLen uint64, node, iface []byte, err error) {
	if len(v) == 0 || v[0] != metaVersion {
		return 0, 0, 0, nil, nil, errors.New("not version 1 metadata")
	}
	v = v[1:]
	var n int
	if ns, n = binary.Varint(v); n <= 0 {
		return 0, 0, 0, nil, nil, errors.New("truncated timestamp")
	}
	v = v[n:]
	if lt, n = binary.Uvarint(v); n <= 0 || lt > math.MaxUint32 {
		return 0, 0, 0, nil, nil, errors.New("truncated or not a 32-bit link type")
	}
	v = v[n:]
	if origLen, n = binary.Uvarint(v); n <= 0 || origLen > math.MaxInt32 {
		return 0, 0, 0, nil, nil, errors.New("truncated or oversized original length")
	}
	v = v[n:]
	if node, v, err = lengthPrefixed(v); err != nil {
		return 0, 0, 0, nil, nil, fmt.Errorf("node: %w", err)
	}
	if iface, v, err = lengthPrefixed(v); err != nil {
		return 0, 0, 0, nil, nil, fmt.Errorf("interface: %w", err)
	}
	if len(v) != 0 {
		return 0, 0, 0, nil, nil, fmt.Errorf("%d bytes after the interface", len(v))
	}
	return ns, lt, origLen, node, iface, nil
}

func lengthPrefixed(v []byte) (field, rest []byte, err error) {
	l, n := binary.Uvarint(v)
	if n <= 0 || l > uint64(len(v)-n) {
		return nil, nil, errors.New("truncated")
	}
	return v[n : n+int(l)], v[n+int(l):], nil
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

// name is v as a string, the previous one when v repeats it.
func (d *Decoder) name(prev *string, v []byte) string {
	if string(v) != *prev {
		*prev = string(v)
	}
	return *prev
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
		case HeaderMeta:
			var (
				ns          int64
				lt, orig    uint64
				node, iface []byte
			)
			if ns, lt, orig, node, iface, err = metaFields(h.Value); err == nil {
				m.Timestamp, m.LinkType, m.OrigLen = time.Unix(0, ns), linktype.Type(lt), int(orig)
				m.Node, m.Interface = d.name(&d.node, node), d.name(&d.iface, iface)
				if m.OrigLen < len(r.Value) {
					err = fmt.Errorf("original length %d shorter than the %d-byte frame", m.OrigLen, len(r.Value))
				}
			}
			if err != nil {
				return Meta{}, nil, fmt.Errorf("packet record at %s/%d@%d: header %s: %w", r.Topic, r.Partition, r.Offset, h.Key, err)
			}
			continue
		case HeaderTimestampNanos:
			var ns int64
			ns, err = parseInt(h.Value, 64)
			m.Timestamp = time.Unix(0, ns)
		case HeaderNode:
			m.Node = d.name(&d.node, h.Value)
		case HeaderInterface:
			m.Interface = d.name(&d.iface, h.Value)
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
