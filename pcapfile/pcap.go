package pcapfile

import (
	"encoding/binary"
	"fmt"

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
	order       binary.ByteOrder
	big         bool // order is big-endian: records are read without calls through the interface
	nano        bool
	recLen      int
	lengthOrder lengthOrder
	linkType    uint32
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
		s.lengthOrder = lengthsSwapped
	case major == 2 && minor == 3:
		s.lengthOrder = lengthsMaybeSwapped
	case major == 2 && minor == 4:
		s.lengthOrder = lengthsNormal
	default:
		return &FormatError{Offset: 4, Reason: fmt.Sprintf("unsupported pcap version %d.%d", major, minor)}
	}
	// The top bits of the link type field carry FCS length flags (LT_FCS_DATAMASK), not the type.
	s.linkType = s.order.Uint32(h[20:]) & 0x03FFFFFF
	s.big = s.order == binary.BigEndian
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
	return nil
}

// nextPcap reads one record into rec. Records are cut from a window of the read buffer peeked once for
// many of them, so a record that the window holds costs no call into bufio, and its data is not copied.
func (r *Reader) nextPcap(rec *Record) error {
	s := &r.pcap
	if len(r.win) < s.recLen && !r.refill(s.recLen) {
		return r.nextPcapSlow(rec)
	}
	caplen, length, err := s.header(r.win, r.off, rec)
	if err != nil {
		return err
	}
	n := s.recLen + int(caplen)
	if len(r.win) < n && !r.refill(n) {
		return r.nextPcapSlow(rec)
	}
	rec.Length, rec.Data = length, r.win[s.recLen:n:n]
	r.win = r.win[n:]
	r.winUsed += n
	r.off += int64(n)
	return nil
}

// refill discards what the window handed out and peeks again, at least need bytes and as many more as
// the read buffer holds; false means it cannot hold need bytes (the input ends first, or need is larger
// than the buffer), with the window emptied. Data handed out before is valid only until this call.
func (r *Reader) refill(need int) bool {
	r.dropWindow()
	if need > readBufferSize {
		return false
	}
	if b, _ := r.in.Peek(need); len(b) < need {
		return false
	}
	// Everything buffered, without waiting for more: a pipe's records are delivered as they come.
	r.win, _ = r.in.Peek(r.in.Buffered())
	return true
}

// dropWindow gives the window's bytes back to bufio (handed-out ones discarded, the rest unread) so that
// in is positioned at the next record again.
func (r *Reader) dropWindow() {
	_, _ = r.in.Discard(r.winUsed) // cannot fail: these bytes were peeked
	r.win, r.winUsed = nil, 0
}

// nextPcapSlow reads a record that the read buffer does not hold whole: at the end of the input (where a
// shortfall is a truncation) or larger than the buffer.
func (r *Reader) nextPcapSlow(rec *Record) error {
	s := &r.pcap
	r.dropWindow()
	start := r.off
	h, err := r.fill(s.recLen, start, "pcap record header", true)
	if err != nil {
		return err
	}
	caplen, length, err := s.header(h, start, rec)
	if err != nil {
		return err
	}
	data, err := r.fill(int(caplen), start, "pcap record data", false)
	if err != nil {
		return err
	}
	rec.Length, rec.Data = length, data
	return nil
}

// header reads a record header: the timestamp into rec, and the captured and wire lengths, in the order
// the file's version uses.
func (s *pcapState) header(h []byte, start int64, rec *Record) (caplen, length uint32, err error) {
	h = h[:16]
	var sec, frac uint32
	if s.big {
		sec, frac = binary.BigEndian.Uint32(h[0:]), binary.BigEndian.Uint32(h[4:])
		caplen, length = binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
	} else {
		sec, frac = binary.LittleEndian.Uint32(h[0:]), binary.LittleEndian.Uint32(h[4:])
		caplen, length = binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	}
	if s.lengthOrder == lengthsSwapped || (s.lengthOrder == lengthsMaybeSwapped && caplen > length) {
		caplen, length = length, caplen
	}
	if caplen > MaxRecord {
		return 0, 0, &FormatError{Offset: start, Reason: fmt.Sprintf("record captured length %d exceeds the maximum %d", caplen, MaxRecord)}
	}
	nsec := int64(frac)
	if !s.nano {
		nsec *= 1000
	}
	// A fraction of a second beyond a second (corrupt, or a writer's bug) carries into the seconds, as
	// time.Unix does with it.
	rec.Sec, rec.Nsec = int64(sec)+nsec/1e9, int32(nsec%1e9)
	rec.LinkType, rec.InterfaceIndex = linktype.Type(s.linkType), 0
	return caplen, length, nil
}

func swap32(v uint32) uint32 {
	return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24
}
