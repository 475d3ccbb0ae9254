// Package linktype is the link-layer header type of a captured frame, as a full 32-bit pcap
// LINKTYPE_ value. It is the one link type shared by the capture-file reader, the Kafka packet
// record, the sensor, the replayer and the decoder: gopacket's layers.LinkType has 8 bits and so
// cannot name Linux cooked v2 (276), which is what `tcpdump -i any` writes.
//
// The package imports only gopacket's layers (for names), so every package can import it.
package linktype

import (
	"strconv"

	"github.com/google/gopacket/layers"
)

// Type is a pcap LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type Type uint32

// Link types the capfleet packages name. Any other value passes through unchanged.
const (
	Null           Type = 0   // BSD loopback: 4-byte host-order address family
	Ethernet       Type = 1   //
	SLIP           Type = 8   // 16-byte SLIP pseudo-header (direction, compressed-header copy), then IP
	PPP            Type = 9   //
	FDDI           Type = 10  //
	PPPSerial      Type = 50  // PPP in HDLC-like framing (RFC 1662), or Cisco HDLC
	RawBSD         Type = 12  // DLT_RAW as most BSD-derived bpf.h number it, left in files unmapped
	RawOpenBSD     Type = 14  // DLT_RAW as OpenBSD numbers it, left in files unmapped
	Raw            Type = 101 // raw IPv4 or IPv6, version from the first nibble
	CiscoHDLC      Type = 104 //
	IEEE802_11     Type = 105 //
	FrameRelay     Type = 107 // Q.922 address, then RFC 2427 (NLPID) encapsulation
	Loop           Type = 108 // OpenBSD loopback: 4-byte network-order address family
	LinuxSLL       Type = 113 // Linux cooked capture v1
	ARCNETLinux    Type = 129 // ARCNET with Linux's 4-byte header, then RFC 1051 or RFC 1201
	User2          Type = 149 // what Darwin numbers DLT_PKTAP, and writes so
	IEEE80211Radio Type = 127 // 802.11 with a radiotap header
	PPI            Type = 192 // Per-Packet Information: a header naming the link type of the frame after it
	IPNet          Type = 226 // Solaris ipnet: 24-byte header with the address family
	IPv4           Type = 228 //
	IPv6           Type = 229 //
	NFLOG          Type = 239 // Linux netfilter log: TLVs, one of them the packet
	IPoIB          Type = 242 // IP over InfiniBand (RFC 4391): addresses, then an EtherType
	PKTAP          Type = 258 // Apple's packet tap: a header naming the link type of the frame after it
	LinuxSLL2      Type = 276 // Linux cooked capture v2
)

// Name is the link type's name, or "" when neither this package nor gopacket knows it. Names
// below 256 are gopacket's, so messages read as they did when the link type was gopacket's.
func (t Type) Name() string {
	if t == LinuxSLL2 {
		return "Linux SLL2"
	}
	if t > 255 {
		return ""
	}
	if n := layers.LinkType(t).String(); n != "UnknownLinkType" {
		return n
	}
	return ""
}

// String is the name, or the number when the link type has none.
func (t Type) String() string {
	if n := t.Name(); n != "" {
		return n
	}
	return strconv.FormatUint(uint64(t), 10)
}
