package batchproducer

import (
	"encoding/binary"
	"hash/crc32"
)

// The v2 record batch header (KIP-98), in the order of the wire: the broker assigns the base offset,
// the CRC-32C covers everything from the attributes to the end, and the producer's id, epoch and
// base sequence make a resent batch recognisable as the one already written.
const (
	offLength        = 8
	offLeaderEpoch   = 12
	offMagic         = 16
	offCRC           = 17
	offAttributes    = 21
	offLastOffset    = 23
	offBaseTimestamp = 27
	offMaxTimestamp  = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offRecordCount   = 57
	headerLen        = 61
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batch is one partition's records from one Writer: appended in raw, then sealed into wire
// (compressed, or raw itself when compression does not pay) and sent until Kafka answers.
type batch struct {
	part       *partition
	tag        any
	raw        []byte // header room, then the records as appended
	wire       []byte // the sealed batch: header, then the records section as sent
	records    int
	frameBytes int
	firstMs    int64 // the Kafka timestamps of the records: the first, and the largest
	maxMs      int64
	held       int // the bytes it holds of the producer's bound
}

// add notes a record appended with Kafka timestamp ms.
func (b *batch) add(ms int64, frame int) {
	if b.records == 0 {
		b.firstMs, b.maxMs = ms, ms
	}
	b.maxMs = max(b.maxMs, ms)
	b.records++
	b.frameBytes += frame
}

// writeHeader fills what the header says of the batch itself; stamp adds the producer's part.
func writeHeader(w []byte, codec int8, records int, firstMs, maxMs int64) {
	binary.BigEndian.PutUint64(w, 0)
	binary.BigEndian.PutUint32(w[offLength:], uint32(len(w)-offLeaderEpoch))
	binary.BigEndian.PutUint32(w[offLeaderEpoch:], 0xffffffff) // -1: set by the broker
	w[offMagic] = 2
	binary.BigEndian.PutUint16(w[offAttributes:], uint16(codec)) // CreateTime, not transactional
	binary.BigEndian.PutUint32(w[offLastOffset:], uint32(records-1))
	binary.BigEndian.PutUint64(w[offBaseTimestamp:], uint64(firstMs))
	binary.BigEndian.PutUint64(w[offMaxTimestamp:], uint64(maxMs))
	binary.BigEndian.PutUint32(w[offRecordCount:], uint32(records))
}

// stamp writes the producer's id, epoch and the batch's first sequence number, and the CRC that
// covers them.
func stamp(w []byte, id int64, epoch int16, seq int32) {
	binary.BigEndian.PutUint64(w[offProducerID:], uint64(id))
	binary.BigEndian.PutUint16(w[offProducerEpoch:], uint16(epoch))
	binary.BigEndian.PutUint32(w[offBaseSequence:], uint32(seq))
	binary.BigEndian.PutUint32(w[offCRC:], crc32.Checksum(w[offAttributes:], castagnoli))
}

// nextSeq is seq after n records: sequence numbers wrap to 0 after the largest int32, as Kafka's do.
func nextSeq(seq int32, n int) int32 {
	return int32((int64(seq) + int64(n)) % (1 << 31))
}
