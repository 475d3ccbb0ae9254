package flow

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
)

// Community ID v1 (https://github.com/corelight/community-id-spec): a hash of the 5-tuple with
// the endpoints in a canonical order, so Zeek, Suricata, Wireshark and we name a flow alike.

// icmpPorts maps an ICMP type and code to the pair Zeek and the Community ID use as ports:
// (type, counterpart type) for request/response types, (type, code) otherwise, where oneWay
// means the endpoints keep their order.
func icmpPorts(v6 bool, typ, code uint8) (sport, dport uint16, oneWay bool) {
	peer := &icmp4Counterpart
	if v6 {
		peer = &icmp6Counterpart
	}
	if c := peer[typ]; c != 0 {
		return uint16(typ), uint16(c - 1), false
	}
	return uint16(typ), uint16(code), true
}

// counterparts maps request types to reply types and back, each plus 1 (0: none).
func counterparts(pairs ...[2]uint8) (m [256]uint16) {
	for _, p := range pairs {
		m[p[0]], m[p[1]] = uint16(p[1])+1, uint16(p[0])+1
	}
	return m
}

var icmp4Counterpart = counterparts(
	[2]uint8{8, 0},   // echo
	[2]uint8{13, 14}, // timestamp
	[2]uint8{15, 16}, // information
	[2]uint8{10, 9},  // router solicitation / advertisement
	[2]uint8{17, 18}, // address mask
)

var icmp6Counterpart = counterparts(
	[2]uint8{128, 129}, // echo
	[2]uint8{133, 134}, // router solicitation / advertisement
	[2]uint8{135, 136}, // neighbour solicitation / advertisement
	[2]uint8{130, 131}, // multicast listener query / report
	[2]uint8{139, 140}, // node information query / response
	[2]uint8{144, 145}, // home agent address discovery
)

// hasPorts reports whether the Community ID hashes ports for the protocol.
func hasPorts(proto uint8) bool {
	switch proto {
	case 6, 17, 132, 1, 58:
		return true
	}
	return false
}

// CommunityID computes the v1 Community ID of a flow from src to dst. For ICMP and ICMPv6,
// sport and dport are the type and code of the packet.
func CommunityID(seed uint16, src, dst netip.Addr, sport, dport uint16, proto uint8) string {
	oneWay := false
	if proto == 1 || proto == 58 {
		sport, dport, oneWay = icmpPorts(proto == 58, uint8(sport), uint8(dport))
	}
	s, d := src.AsSlice(), dst.AsSlice()
	if !oneWay {
		c := bytes.Compare(s, d)
		if c > 0 || (c == 0 && sport > dport) {
			s, d, sport, dport = d, s, dport, sport
		}
	}
	var buf [2 + 16 + 16 + 2 + 4]byte
	b := binary.BigEndian.AppendUint16(buf[:0], seed)
	b = append(b, s...)
	b = append(b, d...)
	b = append(b, proto, 0)
	if hasPorts(proto) {
		b = binary.BigEndian.AppendUint16(b, sport)
		b = binary.BigEndian.AppendUint16(b, dport)
	}
	sum := sha1.Sum(b)
	return "1:" + base64.StdEncoding.EncodeToString(sum[:])
}
