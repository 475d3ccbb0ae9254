package packetrecord

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

// Partitioner sends each record to partition FlowHash % n, so both directions
// of a flow reach the same partition and hence the same processor. The hash is
// recomputed from the record's value and its linktype header rather than
// carried alongside: any record in this format, whoever built it, lands where
// the sensor would have put it.
//
// Partitioning is consistent: while a partition is unavailable its records
// wait (and may fail) instead of moving elsewhere and splitting their flows.
func Partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return Partition
	})
}

// Partition is the partition index among n for r.
func Partition(r *kgo.Record, n int) int {
	if n <= 0 {
		return 0
	}
	return int(FlowHash(r.Value, linkTypeOf(r)) % uint32(n))
}

// linkTypeOf reads the link type from the metadata header, or parses the text
// linktype header by hand (strconv would allocate per record on this hot path).
// Records without either are Metron's, hence Ethernet; a malformed one, which
// Decode rejects, also hashes as Ethernet.
func linkTypeOf(r *kgo.Record) linktype.Type {
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderMeta:
			if _, lt, _, _, _, err := metaFields(h.Value); err == nil {
				return linktype.Type(lt)
			}
			return linktype.Ethernet
		case HeaderLinkType:
			return parseLinkTypeFast(h.Value)
		}
	}
	return linktype.Ethernet
}

// parseLinkTypeFast accepts what parseLinkType does: 1 to 10 decimal digits
// of a value below 2^32.
func parseLinkTypeFast(v []byte) linktype.Type {
	if len(v) == 0 || len(v) > 10 {
		return linktype.Ethernet
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return linktype.Ethernet
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return linktype.Ethernet
	}
	return linktype.Type(n)
}
