package decode

// Checksums, checked only when Decoder.VerifyChecksums is set: Zeek drops an IPv4 packet whose
// header checksum is wrong and does not count a TCP, UDP or ICMP message whose checksum is, and
// the flow table follows it when told.

// sum16 adds b to a ones' complement sum, as 16-bit big-endian words.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// checkIPv4 marks an IPv4 header whose checksum is wrong.
func (d *Decoder) checkIPv4(h *IPHeader, data []byte) {
	if d.VerifyChecksums && len(data) >= h.HeaderLen && fold(sum16(0, data[:h.HeaderLen])) != 0xffff {
		h.BadChecksum = true
	}
}

// checkL4 marks a transport header whose checksum does not match its segment, data being the
// captured bytes from the header on. A segment not captured whole is not checked (nor by Zeek);
// an IPv4 UDP checksum of 0 means none.
func (d *Decoder) checkL4(h *IPHeader, data []byte) {
	n := h.TotalLen - h.HeaderLen
	if !d.VerifyChecksums || h.Quoted || h.Fragment || n < 0 || len(data) < n {
		return
	}
	seg := data[:n]
	var sum uint32
	switch h.L4.Proto {
	case ProtoUDP:
		if h.Version == 4 && len(seg) >= 8 && seg[6] == 0 && seg[7] == 0 {
			return
		}
		fallthrough
	case ProtoTCP, ProtoICMPv6:
		// The pseudo-header: addresses, protocol and length.
		if h.Version == 4 {
			s, t := h.Src.As4(), h.Dst.As4()
			sum = sum16(sum16(0, s[:]), t[:])
		} else {
			s, t := h.Src.As16(), h.Dst.As16()
			sum = sum16(sum16(0, s[:]), t[:])
		}
		sum += uint32(h.L4.Proto) + uint32(n)
	case ProtoICMP:
	default:
		return
	}
	h.L4.BadChecksum = fold(sum16(sum, seg)) != 0xffff
}
