package displayfilter

import (
	"maps"
	"net/netip"
	"slices"

	"capfleet.dev/capfleet/processor/decode"
)

// kind is a field's type as tshark's display filters see it.
type kind uint8

const (
	kProto  kind = iota // a protocol: only its presence can be tested
	kUint               // unsigned integer of bits width
	kBool               // a flag bit: any non-zero value is true
	kIPv4               // IPv4 address
	kIPv6               // IPv6 address
	kEther              // MAC address, held in the low 48 bits of a uint64
	kString             // text
	kTime               // seconds since the epoch (or a duration), held as nanoseconds
	kIP                 // IPv4 or IPv6 address (flows of either family)
)

var kindNames = [...]string{"Protocol", "Unsigned integer", "Boolean", "IPv4 address", "IPv6 address", "Ethernet or other MAC address", "Character string", "Time", "IP address"}

// maxOcc bounds a field's occurrences in one frame: ip.addr and tcp.port have two per header.
const maxOcc = 2 * decode.MaxIP

// layers selects occurrences by the layer that holds them, counted from 1 as tshark's
// "field#N" does; lo == 0 means every layer.
type layers struct{ lo, hi int }

func (l layers) has(n int) bool { return l.lo == 0 || (n >= l.lo && n <= l.hi) }

// nums is a field's occurrences in a frame, returned by value so that a call through a function
// value does not make them escape to the heap.
type nums struct {
	v [maxOcc]uint64
	n int
}

func (o *nums) add(v uint64) {
	if o.n < maxOcc {
		o.v[o.n] = v
		o.n++
	}
}

type addrs struct {
	v [maxOcc]netip.Addr
	n int
}

func (o *addrs) add(v netip.Addr) {
	if o.n < maxOcc {
		o.v[o.n] = v
		o.n++
	}
}

// field is one name a filter may use. Exactly one getter is set, by kind: present for
// protocols, num for integers, booleans, MAC addresses and times, addr for IP addresses, str for
// text.
type field[T any] struct {
	name string
	kind kind
	bits int // kUint: the width, for tshark's "too big for this field"
	// payload is true for fields read from beyond the transport header: a filter without such
	// fields lets the decoder stop at the headers.
	payload bool
	present func(p *T, l layers) bool
	num     func(p *T, frame int, l layers) nums
	addr    func(p *T, l layers) addrs
	str     func(p *T, l layers) ([]byte, bool)
}

// packetField is a field of a decoded packet.
type packetField = field[decode.Packet]

var fields = map[string]*packetField{}

func add(f *packetField) { fields[f.name] = f }

// FieldNames lists the fields and protocols a filter may name, sorted.
func FieldNames() []string { return slices.Sorted(maps.Keys(fields)) }

func frameNum(get func(p *decode.Packet, frame int) uint64) func(*decode.Packet, int, layers) nums {
	return func(p *decode.Packet, frame int, l layers) nums {
		var o nums
		if l.has(1) {
			o.add(get(p, frame))
		}
		return o
	}
}

// eachLayer calls each for the IP headers that are of a kind (is says which) in the layers l asks
// for, counted among the headers of that kind: "ip#2" is the second IPv4 header whatever lies
// between.
func eachLayer(p *decode.Packet, l layers, is func(h *decode.IPHeader) bool, each func(h *decode.IPHeader)) {
	n := 0
	for i := 0; i < int(p.NIP); i++ {
		if h := &p.IP[i]; is(h) {
			n++
			if l.has(n) {
				each(h)
			}
		}
	}
}

func ofVersion(version uint8) func(h *decode.IPHeader) bool {
	return func(h *decode.IPHeader) bool { return h.Version == version }
}

func ofProto(proto uint8) func(h *decode.IPHeader) bool {
	return func(h *decode.IPHeader) bool { return h.L4.Proto == proto }
}

// ipNums reads a field of the IP headers of a version that ends at byte end of the header: a
// header cut before it does not hold it.
func ipNums(version uint8, end int, get func(h *decode.IPHeader) uint64) func(*decode.Packet, int, layers) nums {
	is := ofVersion(version)
	return func(p *decode.Packet, _ int, l layers) nums {
		var o nums
		eachLayer(p, l, is, func(h *decode.IPHeader) {
			if h.Holds(end) {
				o.add(get(h))
			}
		})
		return o
	}
}

func ipAddrs(version uint8, src, dst bool) func(*decode.Packet, layers) addrs {
	srcEnd, dstEnd := 16, 20
	if version == 6 {
		srcEnd, dstEnd = 24, 40
	}
	is := ofVersion(version)
	return func(p *decode.Packet, l layers) addrs {
		var o addrs
		eachLayer(p, l, is, func(h *decode.IPHeader) {
			if src && h.Holds(srcEnd) {
				o.add(h.Src)
			}
			if dst && h.Holds(dstEnd) {
				o.add(h.Dst)
			}
		})
		return o
	}
}

// l4Nums reads a field of every transport header of a protocol; get adds nothing when the header
// does not hold the field (a TCP header cut short or with a bogus data offset shows only some).
func l4Nums(proto uint8, get func(h *decode.IPHeader, o *nums)) func(*decode.Packet, int, layers) nums {
	is := ofProto(proto)
	return func(p *decode.Packet, _ int, l layers) nums {
		var o nums
		eachLayer(p, l, is, func(h *decode.IPHeader) { get(h, &o) })
		return o
	}
}

// hasHeader is the test of an IP or transport protocol: does it stand in a layer asked for.
func hasHeader(is func(h *decode.IPHeader) bool) func(*decode.Packet, layers) bool {
	return func(p *decode.Packet, l layers) bool {
		found := false
		eachLayer(p, l, is, func(*decode.IPHeader) { found = true })
		return found
	}
}

func mac(m [6]byte) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// tcpFull is true when a TCP header was captured far enough, with a sane data offset, for tshark
// to show the fields after the sequence number.
func tcpFull(t *decode.Transport) bool { return !t.BadOffset && !t.Short }

func init() {
	one := func(p *decode.Packet, l layers) bool { return l.has(1) }
	add(&packetField{name: "frame", kind: kProto, present: one})
	add(&packetField{name: "frame.number", kind: kUint, bits: 32, num: frameNum(func(_ *decode.Packet, n int) uint64 { return uint64(n) })})
	add(&packetField{name: "frame.len", kind: kUint, bits: 32, num: frameNum(func(p *decode.Packet, _ int) uint64 { return uint64(p.Len) })})
	add(&packetField{name: "frame.cap_len", kind: kUint, bits: 32, num: frameNum(func(p *decode.Packet, _ int) uint64 { return uint64(p.CapLen) })})
	add(&packetField{name: "frame.time_epoch", kind: kTime, num: frameNum(func(p *decode.Packet, _ int) uint64 { return uint64(p.Timestamp.UnixNano()) })})

	// Every Ethernet header counts, the ones inside tunnels (VXLAN, Geneve, ERSPAN, GRE) too.
	eths := func(get func(e *decode.EthHeader, o *nums)) func(*decode.Packet, int, layers) nums {
		return func(p *decode.Packet, _ int, l layers) nums {
			var o nums
			for i := 0; i < int(p.NEth); i++ {
				if l.has(i + 1) {
					get(&p.Eths[i], &o)
				}
			}
			return o
		}
	}
	add(&packetField{name: "eth", kind: kProto, present: func(p *decode.Packet, l layers) bool {
		return p.NEth > 0 && (l.lo == 0 || l.lo <= int(p.NEth))
	}})
	add(&packetField{name: "eth.src", kind: kEther, num: eths(func(e *decode.EthHeader, o *nums) { o.add(mac(e.Src)) })})
	add(&packetField{name: "eth.dst", kind: kEther, num: eths(func(e *decode.EthHeader, o *nums) { o.add(mac(e.Dst)) })})
	add(&packetField{name: "eth.addr", kind: kEther, num: eths(func(e *decode.EthHeader, o *nums) { o.add(mac(e.Dst)); o.add(mac(e.Src)) })})
	add(&packetField{name: "eth.type", kind: kUint, bits: 16, num: eths(func(e *decode.EthHeader, o *nums) {
		if e.Type != 0 {
			o.add(uint64(e.Type))
		}
	})})

	add(&packetField{name: "vlan", kind: kProto, present: func(p *decode.Packet, l layers) bool {
		found := false
		eachVLAN(p, l, func(decode.VLANTag) { found = true })
		return found
	}})
	add(&packetField{name: "vlan.id", kind: kUint, bits: 16, num: func(p *decode.Packet, _ int, l layers) nums {
		var o nums
		eachVLAN(p, l, func(t decode.VLANTag) { o.add(uint64(t.ID)) })
		return o
	}})
	add(&packetField{name: "mpls", kind: kProto, present: func(p *decode.Packet, l layers) bool {
		return p.NMPLS > 0 && (l.lo == 0 || l.lo <= int(p.NMPLS))
	}})
	add(&packetField{name: "mpls.label", kind: kUint, bits: 32, num: func(p *decode.Packet, _ int, l layers) nums {
		var o nums
		if p.NMPLS > 0 && l.has(1) { // the decoder keeps the outer label only
			o.add(uint64(p.MPLSLabel))
		}
		return o
	}})

	add(&packetField{name: "ip", kind: kProto, present: hasHeader(ofVersion(4))})
	add(&packetField{name: "ip.src", kind: kIPv4, addr: ipAddrs(4, true, false)})
	add(&packetField{name: "ip.dst", kind: kIPv4, addr: ipAddrs(4, false, true)})
	add(&packetField{name: "ip.addr", kind: kIPv4, addr: ipAddrs(4, true, true)})
	add(&packetField{name: "ip.version", kind: kUint, bits: 8, num: ipNums(4, 1, func(h *decode.IPHeader) uint64 { return 4 })})
	add(&packetField{name: "ip.hdr_len", kind: kUint, bits: 8, num: ipNums(4, 1, func(h *decode.IPHeader) uint64 { return uint64(h.HeaderLen) })})
	add(&packetField{name: "ip.len", kind: kUint, bits: 16, num: ipNums(4, 4, func(h *decode.IPHeader) uint64 { return uint64(h.TotalLen) })})
	add(&packetField{name: "ip.id", kind: kUint, bits: 16, num: ipNums(4, 6, func(h *decode.IPHeader) uint64 { return uint64(h.ID) })})
	add(&packetField{name: "ip.flags.df", kind: kBool, num: ipNums(4, 7, func(h *decode.IPHeader) uint64 { return b2u(h.DontFrag) })})
	add(&packetField{name: "ip.flags.mf", kind: kBool, num: ipNums(4, 7, func(h *decode.IPHeader) uint64 { return b2u(h.MoreFrags) })})
	add(&packetField{name: "ip.frag_offset", kind: kUint, bits: 16, num: ipNums(4, 8, func(h *decode.IPHeader) uint64 { return uint64(h.FragOffset) })})
	add(&packetField{name: "ip.ttl", kind: kUint, bits: 8, num: ipNums(4, 9, func(h *decode.IPHeader) uint64 { return uint64(h.TTL) })})
	add(&packetField{name: "ip.proto", kind: kUint, bits: 8, num: ipNums(4, 10, func(h *decode.IPHeader) uint64 { return uint64(h.NextHeader) })})

	add(&packetField{name: "ipv6", kind: kProto, present: hasHeader(ofVersion(6))})
	add(&packetField{name: "ipv6.src", kind: kIPv6, addr: ipAddrs(6, true, false)})
	add(&packetField{name: "ipv6.dst", kind: kIPv6, addr: ipAddrs(6, false, true)})
	add(&packetField{name: "ipv6.addr", kind: kIPv6, addr: ipAddrs(6, true, true)})
	add(&packetField{name: "ipv6.plen", kind: kUint, bits: 16, num: ipNums(6, 6, func(h *decode.IPHeader) uint64 { return uint64(h.TotalLen - 40) })})
	add(&packetField{name: "ipv6.nxt", kind: kUint, bits: 8, num: ipNums(6, 7, func(h *decode.IPHeader) uint64 { return uint64(h.NextHeader) })})
	add(&packetField{name: "ipv6.hlim", kind: kUint, bits: 8, num: ipNums(6, 8, func(h *decode.IPHeader) uint64 { return uint64(h.TTL) })})

	for _, v := range []struct {
		name  string
		proto uint8
	}{{"tcp", decode.ProtoTCP}, {"udp", decode.ProtoUDP}, {"sctp", decode.ProtoSCTP}} {
		add(&packetField{name: v.name, kind: kProto, present: hasHeader(ofProto(v.proto))})
		add(&packetField{name: v.name + ".srcport", kind: kUint, bits: 16, num: l4Nums(v.proto, func(h *decode.IPHeader, o *nums) { o.add(uint64(h.L4.SrcPort)) })})
		add(&packetField{name: v.name + ".dstport", kind: kUint, bits: 16, num: l4Nums(v.proto, func(h *decode.IPHeader, o *nums) { o.add(uint64(h.L4.DstPort)) })})
		add(&packetField{name: v.name + ".port", kind: kUint, bits: 16, num: l4Nums(v.proto, func(h *decode.IPHeader, o *nums) {
			o.add(uint64(h.L4.SrcPort))
			o.add(uint64(h.L4.DstPort))
		})})
	}
	tcpFlags := func(mask uint16) func(*decode.Packet, int, layers) nums {
		return l4Nums(decode.ProtoTCP, func(h *decode.IPHeader, o *nums) {
			if tcpFull(&h.L4) {
				o.add(uint64(h.L4.Flags & mask))
			}
		})
	}
	add(&packetField{name: "tcp.flags", kind: kUint, bits: 16, num: tcpFlags(0x0fff)})
	for _, f := range []struct {
		name string
		bit  uint16
	}{
		{"fin", decode.TCPFin}, {"syn", decode.TCPSyn}, {"reset", decode.TCPRst}, {"push", decode.TCPPsh},
		{"ack", decode.TCPAck}, {"urg", decode.TCPUrg}, {"ece", decode.TCPEce}, {"cwr", decode.TCPCwr}, {"ae", 0x100}, {"res", 0xe00},
	} {
		add(&packetField{name: "tcp.flags." + f.name, kind: kBool, num: tcpFlags(f.bit)})
	}
	add(&packetField{name: "tcp.seq_raw", kind: kUint, bits: 32, num: l4Nums(decode.ProtoTCP, func(h *decode.IPHeader, o *nums) {
		if !h.L4.Short {
			o.add(uint64(h.L4.Seq))
		}
	})})
	add(&packetField{name: "tcp.ack_raw", kind: kUint, bits: 32, num: l4Nums(decode.ProtoTCP, func(h *decode.IPHeader, o *nums) {
		if tcpFull(&h.L4) {
			o.add(uint64(h.L4.Ack))
		}
	})})
	add(&packetField{name: "tcp.window_size_value", kind: kUint, bits: 16, num: l4Nums(decode.ProtoTCP, func(h *decode.IPHeader, o *nums) {
		if tcpFull(&h.L4) {
			o.add(uint64(h.L4.Window))
		}
	})})
	// tshark leaves tcp.len out for a header quoted in an ICMP error, in an IP fragment, or with
	// a bad data offset, as decode's field of that name does.
	add(&packetField{name: "tcp.len", kind: kUint, bits: 32, num: l4Nums(decode.ProtoTCP, func(h *decode.IPHeader, o *nums) {
		if !h.Quoted && !h.Fragment && h.L4.PayloadLen >= 0 {
			o.add(uint64(h.L4.PayloadLen))
		}
	})})
	add(&packetField{name: "udp.length", kind: kUint, bits: 16, num: l4Nums(decode.ProtoUDP, func(h *decode.IPHeader, o *nums) { o.add(uint64(h.L4.UDPLen)) })})

	for _, v := range []struct {
		name  string
		proto uint8
	}{{"icmp", decode.ProtoICMP}, {"icmpv6", decode.ProtoICMPv6}} {
		add(&packetField{name: v.name, kind: kProto, present: hasHeader(ofProto(v.proto))})
		add(&packetField{name: v.name + ".type", kind: kUint, bits: 8, num: l4Nums(v.proto, func(h *decode.IPHeader, o *nums) { o.add(uint64(h.L4.ICMPType)) })})
		add(&packetField{name: v.name + ".code", kind: kUint, bits: 8, num: l4Nums(v.proto, func(h *decode.IPHeader, o *nums) { o.add(uint64(h.L4.ICMPCode)) })})
	}

	// DNS on the mDNS and LLMNR ports is what tshark calls mdns and llmnr; their query names are
	// dns.qry.name all the same.
	add(&packetField{name: "dns", kind: kProto, payload: true, present: func(p *decode.Packet, l layers) bool {
		return p.HasDNS && p.DNSPort != 5353 && p.DNSPort != 5355 && l.has(1)
	}})
	add(&packetField{name: "dns.qry.name", kind: kString, payload: true, str: func(p *decode.Packet, l layers) ([]byte, bool) {
		if !p.HasDNS || !l.has(1) {
			return nil, false
		}
		n := p.DNSName()
		return n, len(n) > 0
	}})
}

// eachVLAN calls each for the VLAN tags in the layers asked for: tshark names an 802.1ad service
// tag (TPID 0x88a8) ieee8021ad, not vlan, so those are skipped and not counted.
func eachVLAN(p *decode.Packet, l layers, each func(t decode.VLANTag)) {
	n := 0
	for i := 0; i < int(p.NTags); i++ {
		if t := p.Tags[i]; t.TPID != 0x88a8 {
			n++
			if l.has(n) {
				each(t)
			}
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
