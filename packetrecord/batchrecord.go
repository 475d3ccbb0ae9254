package packetrecord

import (
	"encoding/binary"
	"math/bits"
)

// AppendBatchRecord appends the record Encode would build for m and frame, in the form it takes
// inside a Kafka v2 record batch: its length, attributes, timestamp and offset deltas, the Metron
// key, the frame and the one HeaderMeta header, every integer a zigzag varint (the record format of
// KIP-98). tsDelta is the record's timestamp less the batch's first, in ms; offsetDelta its index in
// the batch. A producer that builds its own batches writes records straight from a capture ring into
// a batch's buffer this way, with no record struct and no copy in between.
func AppendBatchRecord(dst []byte, tsDelta int64, offsetDelta int32, m Meta, frame []byte) []byte {
	ns := m.Timestamp.UnixNano()
	nameLens := uvarintLen(uint64(len(m.Node))) + len(m.Node) + uvarintLen(uint64(len(m.Interface))) + len(m.Interface)
	meta := 1 + varlongLen(ns) + uvarintLen(uint64(m.LinkType)) + uvarintLen(uint64(m.OrigLen)) + nameLens
	body := 1 + varlongLen(tsDelta) + varlongLen(int64(offsetDelta)) +
		1 + KeyLen + // a key length of 8 is one byte
		varlongLen(int64(len(frame))) + len(frame) +
		1 + // one header
		1 + len(HeaderMeta) +
		varlongLen(int64(meta)) + meta
	// One capacity check, then each field put in place: appending field by field checked and grew
	// the slice a dozen times a record.
	n := len(dst)
	total := varlongLen(int64(body)) + body
	if cap(dst)-n < total {
		dst = append(dst[:cap(dst)], make([]byte, n+total-cap(dst))...)[:n]
	}
	b := dst[n : n+total]
	i := binary.PutVarint(b, int64(body))
	b[i] = 0 // attributes: none are defined for records
	i++
	i += binary.PutVarint(b[i:], tsDelta)
	i += binary.PutVarint(b[i:], int64(offsetDelta))
	b[i] = KeyLen << 1
	i++
	binary.BigEndian.PutUint64(b[i:], metronKey(m.Timestamp))
	i += KeyLen
	i += binary.PutVarint(b[i:], int64(len(frame)))
	i += copy(b[i:], frame)
	b[i] = 1 << 1 // one header
	b[i+1] = byte(len(HeaderMeta) << 1)
	i += 2
	i += copy(b[i:], HeaderMeta)
	i += binary.PutVarint(b[i:], int64(meta))
	b[i] = metaVersion
	i++
	i += binary.PutVarint(b[i:], ns)
	i += binary.PutUvarint(b[i:], uint64(m.LinkType))
	i += binary.PutUvarint(b[i:], uint64(m.OrigLen))
	i += binary.PutUvarint(b[i:], uint64(len(m.Node)))
	i += copy(b[i:], m.Node)
	i += binary.PutUvarint(b[i:], uint64(len(m.Interface)))
	copy(b[i:], m.Interface)
	return dst[:n+total]
}

// BatchRecordLen is the most AppendBatchRecord appends for m and frame.
func BatchRecordLen(m Meta, frame []byte) int {
	return encodedLen(m, frame) + 6*binary.MaxVarintLen64
}

// varlongLen is the length of v as a zigzag varint (binary.AppendVarint's encoding, Kafka's too).
func varlongLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
