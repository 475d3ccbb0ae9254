package sensor

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capture on "any", as libpcap does it: one socket bound to no interface
// sees the packets of every interface, whose link-layer headers differ
// (Ethernet, none for tun, ...). So the socket is SOCK_DGRAM, which hands
// over the packet from its network header on, and the link layer is told
// instead by a Linux cooked v2 (LINKTYPE_LINUX_SLL2, 276) header built from
// the ring's sockaddr_ll: protocol, interface index, hardware type, packet
// type and link-layer source address. tcpdump -i any writes the same.
//
// The kernel cannot run a filter compiled for that framing on a SOCK_DGRAM
// socket without rewriting its link-layer loads (libpcap does), so on "any"
// every packet reaches the ring and the filter runs in userspace on the
// cooked frame. VLAN tags the kernel took off are not put back.

// cookedMacOffset is where the kernel puts a SOCK_DGRAM packet after its
// ring header (tpacket_rcv: TPACKET_ALIGN(tp_hdrlen) + 16, no tp_reserve).
const cookedMacOffset = (tp3HdrLen+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) + 16

// sll2HeaderLen is the size of struct sll2_header (pcap/sll.h).
const sll2HeaderLen = 20

// sockaddr_ll offsets inside the ring header (linux/if_packet.h).
const (
	sllProtocol = 2 // __be16
	sllIfindex  = 4 // int, host order
	sllHatype   = 8 // unsigned short, host order
	sllHalen    = 11
	sllAddr     = 12 // 8 bytes
)

// linkAddr is the sockaddr_ll the kernel wrote before a packet in the ring.
type linkAddr struct {
	protocol uint16
	ifindex  uint32
	hatype   uint16
	pktType  uint8
	halen    uint8
	addr     [8]byte
}

// readLinkAddr reads the sockaddr_ll in front of frame, a slice straight out
// of the ring whose header readRingMeta vouched for.
func readLinkAddr(frame []byte, macoff int) linkAddr {
	hdr := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(frame)), -macoff)), tp3HdrLen)
	sll := hdr[tp3Size:]
	a := linkAddr{
		protocol: binary.BigEndian.Uint16(sll[sllProtocol:]),
		ifindex:  binary.NativeEndian.Uint32(sll[sllIfindex:]),
		hatype:   binary.NativeEndian.Uint16(sll[sllHatype:]),
		pktType:  sll[sllPktType],
		halen:    sll[sllHalen],
	}
	copy(a.addr[:], sll[sllAddr:sllAddr+8])
	return a
}

// appendCooked writes the Linux cooked v2 header for a, then payload, into buf.
func appendCooked(buf []byte, a linkAddr, payload []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf[:0], a.protocol)
	buf = append(buf, 0, 0) // reserved, must be zero
	buf = binary.BigEndian.AppendUint32(buf, a.ifindex)
	buf = binary.BigEndian.AppendUint16(buf, a.hatype)
	buf = append(buf, a.pktType, min(a.halen, 8))
	buf = append(buf, a.addr[:]...)
	return append(buf, payload...)
}
