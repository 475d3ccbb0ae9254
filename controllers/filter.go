package controllers

import (
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
)

// checkFilter compiles a tcpdump-syntax filter with libpcap, the same compiler the workloads use, so a filter
// that would fail on a node is refused before anything is rolled out.
func checkFilter(expr string, snaplen int32) error {
	if expr == "" {
		return nil
	}
	if snaplen <= 0 {
		snaplen = 262144
	}
	_, err := pcap.CompileBPFFilter(layers.LinkTypeEthernet, int(snaplen), expr)
	return err
}
