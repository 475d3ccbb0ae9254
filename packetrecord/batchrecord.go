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
	meta := metaLen(m)
	body := 1 + varlongLen(tsDelta) + varlongLen(int64(offsetDelta)) +
		varlongLen(KeyLen) + KeyLen +
		varlongLen(int64(len(frame))) + len(frame) +
		1 + // one header
		varlongLen(int64(len(HeaderMeta))) + len(HeaderMeta) +
		varlongLen(int64(meta)) + meta
	dst = appendVarlong(dst, int64(body))
	dst = append(dst, 0) // attributes: none are defined for records
	dst = appendVarlong(dst, tsDelta)
	dst = appendVarlong(dst, int64(offsetDelta))
	dst = appendVarlong(dst, KeyLen)
	dst = binary.BigEndian.AppendUint64(dst, metronKey(m.Timestamp))
	dst = appendVarlong(dst, int64(len(frame)))
	dst = append(dst, frame...)
	dst = appendVarlong(dst, 1)
	dst = appendVarlong(dst, int64(len(HeaderMeta)))
	dst = append(dst, HeaderMeta...)
	dst = appendVarlong(dst, int64(meta))
	return appendMeta(dst, m)
}

// BatchRecordLen is the most AppendBatchRecord appends for m and frame.
func BatchRecordLen(m Meta, frame []byte) int {
	return encodedLen(m, frame) + 6*binary.MaxVarintLen64
}

// metaLen is how many bytes appendMeta writes for m.
func metaLen(m Meta) int {
	return 1 + varlongLen(m.Timestamp.UnixNano()) + uvarintLen(uint64(m.LinkType)) + uvarintLen(uint64(m.OrigLen)) +
		uvarintLen(uint64(len(m.Node))) + len(m.Node) + uvarintLen(uint64(len(m.Interface))) + len(m.Interface)
}

func appendVarlong(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// varlongLen is the length of v as a zigzag varint (binary.AppendVarint's encoding, Kafka's too).
func varlongLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
