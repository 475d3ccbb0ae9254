package pcapfile

import (
	"encoding/binary"
	"fmt"
	"time"

	"capfleet.dev/capfleet/linktype"
)

// Magic numbers of classic pcap, as read big-endian from the first four bytes.
const (
	magicMicro      = 0xa1b2c3d4
	magicNano       = 0xa1b23c4d
	magicKuznetzov  = 0xa1b2cd34 // patched libpcap: 8 more bytes per record header
	pcapHeaderLen   = 24
	pcapRecordLen   = 16
	kuznetzovRecLen = 24
)

// lengthOrder says whether caplen and len trade places in record headers: they did before pcap 2.3, and
// some 2.3 writers still swapped them, which libpcap detects by caplen > len.
type lengthOrder int

const (
	lengthsNormal lengthOrder = iota
	lengthsSwapped
	lengthsMaybeSwapped
)

type pcapState struct {
	order    binary.ByteOrder
	nano     bool
	recLen   int
	lengths  lengthOrder
	linkType uint32
}

func (r *Reader) openPcap(magic uint32) error {
	s := &r.pcap
	switch magic {
	case magicMicro, magicNano, magicKuznetzov:
		s.order = binary.BigEndian
	default:
		switch swap32(magic) {
		case magicMicro, magicNano, magicKuznetzov:
			s.order = binary.LittleEndian
			magic = swap32(magic)
		default:
			return &FormatError{Offset: 0, Reason: fmt.Sprintf("not a pcap, pcapng or gzip file (magic %08x)", swap32(magic))}
		}
	}
	h, err := r.fill(pcapHeaderLen, 0, "pcap file header", false)
	if err != nil {
		return err
	}
	major, minor := s.order.Uint16(h[4:]), s.order.Uint16(h[6:])
	// libpcap reads 2.0 to 2.4 and DG/UX's 543.0; nothing else is known to exist.
	switch {
	case major == 2 && minor < 3, major == 543 && minor == 0:
		s.lengths = lengthsSwapped
	case major == 2 && minor == 3:
		s.lengths = lengthsMaybeSwapped
	case major == 2 && minor == 4:
		s.lengths = lengthsNormal
	default:
		return &FormatError{Offset: 4, Reason: fmt.Sprintf("unsupported pcap version %d.%d", major, minor)}
	}
	// The top bits of the link type field carry FCS length flags (LT_FCS_DATAMASK), not the type.
	s.linkType = s.order.Uint32(h[20:]) & 0x03FFFFFF
	s.nano = magic == magicNano
	s.recLen = pcapRecordLen
	if magic == magicKuznetzov {
		s.recLen = kuznetzovRecLen
	}
	r.format = "pcap"
	if s.nano {
		r.format = "pcap-ns"
	}
	r.noteLinkType(s.linkType)
	r.next = r.nextPcap
	return nil
}

func (r *Reader) nextPcap() (Packet, error) {
	s := &r.pcap
	start := r.off
	h, err := r.fill(s.recLen, start, "pcap record header", true)
	if err != nil {
		return Packet{}, err
	}
	sec, frac := s.order.Uint32(h[0:]), s.order.Uint32(h[4:])
	caplen, length := s.order.Uint32(h[8:]), s.order.Uint32(h[12:])
	if s.lengths == lengthsSwapped || (s.lengths == lengthsMaybeSwapped && caplen > length) {
		caplen, length = length, caplen
	}
	if caplen > MaxRecord {
		return Packet{}, &FormatError{Offset: start, Reason: fmt.Sprintf("record captured length %d exceeds the maximum %d", caplen, MaxRecord)}
	}
	data, err := r.fill(int(caplen), start, "pcap record data", false)
	if err != nil {
		return Packet{}, err
	}
	nsec := int64(frac)
	if !s.nano {
		nsec *= 1000
	}
	return Packet{
		Timestamp:     time.Unix(int64(sec), nsec).UTC(),
		CaptureLength: int(caplen),
		Length:        int(length),
		LinkType:      linktype.Type(s.linkType),
		Data:          data,
	}, nil
}

func swap32(v uint32) uint32 {
	return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24
}
