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
	var n BatchNames
	return n.Append(dst, tsDelta, offsetDelta, m, frame)
}

// BatchNames is AppendBatchRecord for a writer whose records mostly carry the same node and
// interface (a capture ring's): their encoding is kept from one record to the next rather than
// redone, and each field is put in place after one capacity check.
type BatchNames struct {
	node, iface string
	names       []byte // the metadata's tail: node and interface, each with its length
}

// Append is AppendBatchRecord.
func (bn *BatchNames) Append(dst []byte, tsDelta int64, offsetDelta int32, m Meta, frame []byte) []byte {
	if m.Node != bn.node || m.Interface != bn.iface || bn.names == nil {
		bn.node, bn.iface = m.Node, m.Interface
		bn.names = binary.AppendUvarint(bn.names[:0], uint64(len(m.Node)))
		bn.names = append(bn.names, m.Node...)
		bn.names = binary.AppendUvarint(bn.names, uint64(len(m.Interface)))
		bn.names = append(bn.names, m.Interface...)
	}
	ns := m.Timestamp.UnixNano()
	us := ns / 1e3
	if ns < 0 {
		us = m.Timestamp.UnixMicro() // rounds toward minus infinity, as metronKey's does
	}
	meta := 1 + varlongLen(ns) + uvarintLen(uint64(m.LinkType)) + uvarintLen(uint64(m.OrigLen)) + len(bn.names)
	body := 1 + varlongLen(tsDelta) + varlongLen(int64(offsetDelta)) +
		1 + KeyLen + // a key length of 8 is one byte
		varlongLen(int64(len(frame))) + len(frame) +
		1 + // one header
		1 + len(HeaderMeta) +
		varlongLen(int64(meta)) + meta
	n := len(dst)
	total := varlongLen(int64(body)) + body
	if cap(dst)-n < total {
		dst = append(dst[:cap(dst)], make([]byte, n+total-cap(dst))...)[:n]
	}
	b := dst[n : n+total : n+total]
	i := putVarlong(b, int64(body))
	b[i] = 0 // attributes: none are defined for records
	i++
	i += putVarlong(b[i:], tsDelta)
	i += putVarlong(b[i:], int64(offsetDelta))
	b[i] = KeyLen << 1
	i++
	binary.BigEndian.PutUint64(b[i:], uint64(max(us, 0)))
	i += KeyLen
	i += putVarlong(b[i:], int64(len(frame)))
	i += copy(b[i:], frame)
	b[i] = 1 << 1 // one header
	b[i+1] = byte(len(HeaderMeta) << 1)
	b[i+2], b[i+3] = HeaderMeta[0], HeaderMeta[1]
	i += 4
	i += putVarlong(b[i:], int64(meta))
	b[i] = metaVersion
	i++
	i += putVarlong(b[i:], ns)
	i += putUvarint(b[i:], uint64(m.LinkType))
	i += putUvarint(b[i:], uint64(m.OrigLen))
	copy(b[i:], bn.names)
	return dst[:n+total]
}

// putVarlong writes v as a zigzag varint, the one-byte case (most of a record's) inline.
func putVarlong(b []byte, v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	if u < 1<<7 {
		b[0] = byte(u)
		return 1
	}
	return putUvarint(b, u)
}

// putUvarint is binary.PutUvarint with the one- and two-byte cases first.
func putUvarint(b []byte, v uint64) int {
	if v < 1<<7 {
		b[0] = byte(v)
		return 1
	}
	if v < 1<<14 {
		b[0] = byte(v) | 0x80
		b[1] = byte(v >> 7)
		return 2
	}
	return binary.PutUvarint(b, v)
}

// BatchRecordLen is the most AppendBatchRecord appends for m and frame.
func BatchRecordLen(m Meta, frame []byte) int {
	return encodedLen(m, frame) + 6*binary.MaxVarintLen64
}

// varlongLen is the length of v as a zigzag varint (binary.AppendVarint's encoding, Kafka's too).
func varlongLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
