package packetrecord

import (
	"github.com/google/gopacket/layers"
	"github.com/twmb/franz-go/pkg/kgo"
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

// linkTypeUnrepresentable stands for link types above 255 (gopacket's LinkType
// is 8 bits): FlowHash does not read it, so all such frames share a partition.
const linkTypeUnrepresentable layers.LinkType = 255

// linkTypeOf parses the linktype header by hand: strconv would allocate per
// record on this hot path. Records without one are Metron's, hence Ethernet.
func linkTypeOf(r *kgo.Record) layers.LinkType {
	for _, h := range r.Headers {
		if h.Key != HeaderLinkType {
			continue
		}
		if len(h.Value) == 0 || len(h.Value) > 3 {
			return layers.LinkTypeEthernet
		}
		var v uint16
		for _, c := range h.Value {
			if c < '0' || c > '9' {
				return layers.LinkTypeEthernet
			}
			v = v*10 + uint16(c-'0')
		}
		if v > 255 {
			return linkTypeUnrepresentable
		}
		return layers.LinkType(v)
	}
	return layers.LinkTypeEthernet
}
