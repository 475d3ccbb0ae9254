package sensor

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"capfleet.dev/capfleet/linktype"
)

// The ring's per-packet header carries two things gopacket does not pass on.
//
// The kernel moves the outer VLAN tag of a received frame into the ring's
// per-packet header (tp_vlan_tci, tp_vlan_tpid), so AF_PACKET hands over the
// frame without it. libpcap puts the tag back; so do we. gopacket's
// OptAddVLANHeader would too, but always as 802.1Q (0x8100), losing an
// 802.1ad outer tag's TPID, and not at all for a tag whose TCI is 0.
//
// And the packet type, which tells on loopback the outgoing copy of a packet
// from the incoming one: both reach the ring, libpcap keeps one, so do we.
//
// Layout of struct tpacket3_hdr (linux/if_packet.h, a stable UAPI).
const (
	tp3SnapLen  = 12
	tp3Status   = 20
	tp3Mac      = 24
	tp3VlanTCI  = 32
	tp3VlanTPID = 36
	tp3Size     = 48
	// TPACKET3_HDRLEN: the aligned header plus struct sockaddr_ll, whose
	// sll_pkttype follows family, protocol, ifindex and hatype.
	tp3HdrLen  = tp3Size + unix.SizeofSockaddrLinklayer
	sllPktType = 10
)

// macOffset is where the kernel puts the frame after the packet's header
// (tpacket_rcv, SOCK_RAW, no tp_reserve, no vnet header): the network header
// lands TPACKET_ALIGNed after at least 16 bytes of link header room.
func macOffset(lt linktype.Type) int {
	maclen := 0
	if lt == linktype.Ethernet {
		maclen = 14
	}
	netoff := (tp3HdrLen + max(maclen, 16) + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	return netoff - maclen
}

// ringMeta is what the ring's per-packet header says beyond gopacket's
// CaptureInfo.
type ringMeta struct {
	hasTag    bool
	tpid, tci uint16
	pktType   uint8 // sockaddr_ll.sll_pkttype: PACKET_HOST, PACKET_OUTGOING...
}

// readRingMeta reads the header in front of frame, which must be a slice
// straight out of the ring. ok is false when the header found at macoff
// before the frame does not vouch for itself (its tp_mac and tp_snaplen must
// describe this very frame).
func readRingMeta(frame []byte, macoff int) (m ringMeta, ok bool) {
	if len(frame) == 0 || macoff < tp3HdrLen {
		return m, false
	}
	hdr := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(frame)), -macoff)), tp3HdrLen)
	if int(binary.NativeEndian.Uint16(hdr[tp3Mac:])) != macoff ||
		int(binary.NativeEndian.Uint32(hdr[tp3SnapLen:])) != len(frame) {
		return m, false
	}
	m.pktType = hdr[tp3Size+sllPktType]
	status := binary.NativeEndian.Uint32(hdr[tp3Status:])
	if status&unix.TP_STATUS_VLAN_VALID == 0 {
		return m, true
	}
	m.hasTag, m.tpid = true, 0x8100
	if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
		m.tpid = binary.NativeEndian.Uint16(hdr[tp3VlanTPID:])
	}
	m.tci = uint16(binary.NativeEndian.Uint32(hdr[tp3VlanTCI:]))
	return m, true
}

// withVLANTag writes frame into buf with the tag back after the MAC addresses.
func withVLANTag(buf, frame []byte, tpid, tci uint16) []byte {
	if len(frame) < 12 {
		return append(buf[:0], frame...)
	}
	buf = append(buf[:0], frame[:12]...)
	buf = binary.BigEndian.AppendUint16(buf, tpid)
	buf = binary.BigEndian.AppendUint16(buf, tci)
	return append(buf, frame[12:]...)
}
