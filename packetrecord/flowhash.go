package packetrecord

import (
	"bytes"
	"encoding/binary"

	"capfleet.dev/capfleet/linktype"
)

const (
	etherIPv4     = 0x0800
	etherIPv6     = 0x86DD
	etherVLAN     = 0x8100
	etherQinQ     = 0x88A8
	etherQinQPre  = 0x9100 // pre-standard QinQ, still seen on old switches
	ipv6MinHeader = 40
)

// FlowHash is a symmetric hash of a frame's 5-tuple (addresses, protocol,
// ports): both directions of a flow get the same value, so partitioning by it
// brings a whole conversation to one consumer. It reads Ethernet with any
// number of 802.1Q/802.1ad tags, Linux cooked (v1 and v2), raw IP and BSD
// loopback framing, IPv4 and IPv6 (walking extension headers), and the ports
// of TCP, UDP, UDP-Lite, DCCP and SCTP.
//
// Fragments hash without ports, even the first one that carries them, so all
// pieces of a datagram stay together. A frame that is not IP hashes by its
// pair of MAC addresses and EtherType (again symmetric), or else by its link
// type alone: unknown traffic still lands in one stable partition. It never
// allocates.
func FlowHash(frame []byte, lt linktype.Type) uint32 {
	et, off, ok := networkLayer(frame, lt)
	if !ok {
		return fmix32(hashLinkType(lt))
	}
	switch et {
	case etherIPv4:
		if h, ok := hashIPv4(frame[off:]); ok {
			return h
		}
	case etherIPv6:
		if h, ok := hashIPv6(frame[off:]); ok {
			return h
		}
	}
	if lt == linktype.Ethernet && len(frame) >= 14 {
		h := hashPair(fnvOffset, frame[0:6], frame[6:12])
		return fmix32(hashUint16(h, et))
	}
	return fmix32(hashUint16(hashLinkType(lt), et))
}

// hashLinkType feeds a link type that fits a byte as that one byte, as when
// link types were 8 bits, so records of those keep their partitions; wider
// ones feed all four bytes.
func hashLinkType(lt linktype.Type) uint32 {
	if lt <= 0xff {
		return hashByte(fnvOffset, byte(lt))
	}
	h := hashUint16(fnvOffset, uint16(lt>>16))
	return hashUint16(h, uint16(lt))
}

// networkLayer finds the EtherType of what the link layer carries and where
// it starts. Raw-IP link types report the EtherType of their IP version.
func networkLayer(frame []byte, lt linktype.Type) (etherType uint16, off int, ok bool) {
	switch lt {
	case linktype.Ethernet:
		if len(frame) < 14 {
			return 0, 0, false
		}
		return skipVLANs(frame, binary.BigEndian.Uint16(frame[12:14]), 14)
	case linktype.LinuxSLL:
		if len(frame) < 16 {
			return 0, 0, false
		}
		return skipVLANs(frame, binary.BigEndian.Uint16(frame[14:16]), 16)
	case linktype.LinuxSLL2:
		// The protocol type leads SLL2's 20-byte header.
		if len(frame) < 20 {
			return 0, 0, false
		}
		return skipVLANs(frame, binary.BigEndian.Uint16(frame[0:2]), 20)
	case linktype.Raw, linktype.RawBSD, linktype.RawOpenBSD:
		return ipVersion(frame, 0)
	case linktype.IPv4:
		return etherIPv4, 0, true
	case linktype.IPv6:
		return etherIPv6, 0, true
	case linktype.Null, linktype.Loop:
		// The 4-byte address family is in the writer's byte order (Null) or
		// network order (Loop); the IP version nibble settles it either way.
		if len(frame) < 4 {
			return 0, 0, false
		}
		return ipVersion(frame, 4)
	}
	return 0, 0, false
}

func skipVLANs(frame []byte, et uint16, off int) (uint16, int, bool) {
	for (et == etherVLAN || et == etherQinQ || et == etherQinQPre) && len(frame) >= off+4 {
		et = binary.BigEndian.Uint16(frame[off+2 : off+4])
		off += 4
	}
	return et, off, true
}

func ipVersion(frame []byte, off int) (uint16, int, bool) {
	if len(frame) <= off {
		return 0, 0, false
	}
	switch frame[off] >> 4 {
	case 4:
		return etherIPv4, off, true
	case 6:
		return etherIPv6, off, true
	}
	return 0, 0, false
}

func hashIPv4(ip []byte) (uint32, bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return 0, false
	}
	ihl := int(ip[0]&0x0f) * 4
	proto := ip[9]
	fragment := binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 // MF flag or an offset
	var l4 []byte
	if !fragment && ihl >= 20 && len(ip) >= ihl {
		l4 = ip[ihl:]
	}
	return hashTuple(proto, ip[12:16], ip[16:20], l4), true
}

func hashIPv6(ip []byte) (uint32, bool) {
	if len(ip) < ipv6MinHeader || ip[0]>>4 != 6 {
		return 0, false
	}
	next := ip[6]
	p := ipv6MinHeader
	fragment := false
	// Bounded walk: a chain longer than this is hostile or broken, and its
	// packets still hash consistently by addresses and the last header seen.
walk:
	for i := 0; i < 8 && !fragment; i++ {
		var size int
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if len(ip) < p+2 {
				return hashTuple(next, ip[8:24], ip[24:40], nil), true
			}
			size = (int(ip[p+1]) + 1) * 8
		case 44: // fragment
			if len(ip) < p+8 {
				return hashTuple(next, ip[8:24], ip[24:40], nil), true
			}
			size = 8
			fragment = binary.BigEndian.Uint16(ip[p+2:p+4])&0xfff9 != 0 // offset or M flag
		case 51: // authentication header
			if len(ip) < p+2 {
				return hashTuple(next, ip[8:24], ip[24:40], nil), true
			}
			size = (int(ip[p+1]) + 2) * 4
		default:
			break walk
		}
		next = ip[p]
		p += size
	}
	var l4 []byte
	if !fragment && len(ip) >= p {
		l4 = ip[p:]
	}
	return hashTuple(next, ip[8:24], ip[24:40], l4), true
}

// hashTuple orders the two endpoints so that both directions feed the hash
// the same bytes. l4 is nil when ports must not be used.
func hashTuple(proto byte, src, dst, l4 []byte) uint32 {
	var sport, dport uint16
	switch proto {
	case 6, 17, 33, 132, 136: // TCP, UDP, DCCP, SCTP, UDP-Lite: ports lead the header
		if len(l4) >= 4 {
			sport = binary.BigEndian.Uint16(l4[0:2])
			dport = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	if c := bytes.Compare(src, dst); c > 0 || (c == 0 && sport > dport) {
		src, dst = dst, src
		sport, dport = dport, sport
	}
	h := hashByte(fnvOffset, proto)
	h = hashBytes(h, src)
	h = hashBytes(h, dst)
	h = hashUint16(h, sport)
	h = hashUint16(h, dport)
	return fmix32(h)
}

func hashPair(h uint32, a, b []byte) uint32 {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	return hashBytes(hashBytes(h, a), b)
}

// FNV-1a, then MurmurHash3's finalizer so that hash % n spreads well even for
// small n (FNV's low bits alone correlate with the last bytes fed).
const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

func hashByte(h uint32, b byte) uint32 { return (h ^ uint32(b)) * fnvPrime }

func hashBytes(h uint32, bs []byte) uint32 {
	for _, b := range bs {
		h = hashByte(h, b)
	}
	return h
}

func hashUint16(h uint32, v uint16) uint32 { return hashByte(hashByte(h, byte(v>>8)), byte(v)) }

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
