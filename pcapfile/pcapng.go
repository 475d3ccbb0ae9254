package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"capfleet.dev/capfleet/linktype"
)

// pcapng block types (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).
const (
	pcapngBlockSHB = 0x0a0d0d0a
	pcapngBlockIDB = 1
	pcapngBlockOPB = 2 // obsolete Packet Block
	pcapngBlockSPB = 3
	pcapngBlockEPB = 6

	pcapngByteOrderMagic = 0x1a2b3c4d

	optEnd      = 0
	optTSResol  = 9
	optTSOffset = 14

	blockHeaderLen  = 8
	blockTrailerLen = 4
)

type pcapngInterface struct {
	linkType uint32
	snaplen  uint32 // as libpcap adjusts it: 0 or beyond MaxRecord means MaxRecord
	units    uint64 // timestamp units per second
	offset   int64  // seconds added to every timestamp (if_tsoffset)
}

type pcapngState struct {
	order  binary.ByteOrder
	ifaces []pcapngInterface // of the current section
}

func (r *Reader) openPcapng() error {
	r.format = "pcapng"
	r.ng = true
	// The first block must be a good SHB; later ones are handled as they come.
	typ, body, start, err := r.readBlock(false)
	if err != nil {
		return err
	}
	if typ != pcapngBlockSHB {
		return &FormatError{Offset: start, Reason: "pcapng file does not start with a section header block"}
	}
	return r.section(body, start)
}

func (r *Reader) nextPcapng() (Record, error) {
	for {
		typ, body, start, err := r.readBlock(true)
		if err != nil {
			return Record{}, err
		}
		switch typ {
		case pcapngBlockSHB:
			err = r.section(body, start)
		case pcapngBlockIDB:
			err = r.addInterface(body, start)
		case pcapngBlockEPB:
			return r.enhancedPacket(body, start)
		case pcapngBlockSPB:
			return r.simplePacket(body, start)
		case pcapngBlockOPB:
			return r.obsoletePacket(body, start)
		}
		if err != nil {
			return Record{}, err
		}
	}
}

// readBlock reads one block and returns its body without the header and trailer. Packet, interface and
// section blocks land in the reused buffer (at most maxBlock bytes); other blocks are skipped unread and
// come back with a nil body. io.EOF means the input ended cleanly between blocks.
func (r *Reader) readBlock(eofOK bool) (typ uint32, body []byte, start int64, err error) {
	s := &r.pcapng
	start = r.off
	h, err := r.fill(blockHeaderLen, start, "pcapng block header", eofOK)
	if err != nil {
		return 0, nil, start, err
	}
	// Decode before looking further: h may point into the read buffer, which Peek can move.
	typBE, typLE := binary.BigEndian.Uint32(h), binary.LittleEndian.Uint32(h)
	totalBE, totalLE := binary.BigEndian.Uint32(h[4:]), binary.LittleEndian.Uint32(h[4:])
	if typBE == pcapngBlockSHB { // the same in both byte orders
		bom, _ := r.in.Peek(4)
		if len(bom) < 4 {
			return 0, nil, start, &FormatError{Offset: start, Reason: "truncated section header block", Err: ErrTruncated}
		}
		switch {
		case binary.BigEndian.Uint32(bom) == pcapngByteOrderMagic:
			s.order = binary.BigEndian
		case binary.LittleEndian.Uint32(bom) == pcapngByteOrderMagic:
			s.order = binary.LittleEndian
		default:
			return 0, nil, start, &FormatError{Offset: start + 8, Reason: fmt.Sprintf("section header block has bad byte-order magic %x", bom)}
		}
	}
	if s.order == nil {
		return 0, nil, start, &FormatError{Offset: start, Reason: "pcapng block before any section header block"}
	}
	typ, total := typLE, totalLE
	if s.order == binary.ByteOrder(binary.BigEndian) {
		typ, total = typBE, totalBE
	}
	if total < blockHeaderLen+blockTrailerLen || total%4 != 0 {
		return 0, nil, start, &FormatError{Offset: start, Reason: fmt.Sprintf("pcapng block of type %d has invalid length %d", typ, total)}
	}
	rest := int64(total) - blockHeaderLen
	switch typ {
	case pcapngBlockSHB, pcapngBlockIDB, pcapngBlockEPB, pcapngBlockSPB, pcapngBlockOPB:
	default:
		return typ, nil, start, blockError(typ, r.skip(rest, start, "pcapng block"))
	}
	if rest > maxBlock {
		return 0, nil, start, &FormatError{Offset: start, Reason: fmt.Sprintf("pcapng block of type %d has length %d, beyond the maximum %d", typ, total, maxBlock+blockHeaderLen)}
	}
	b, err := r.fill(int(rest), start, "pcapng block", false)
	if err != nil {
		return 0, nil, start, blockError(typ, err)
	}
	body = b[:len(b)-blockTrailerLen]
	if trailer := s.order.Uint32(b[len(body):]); trailer != total {
		return 0, nil, start, &FormatError{Offset: start, Reason: fmt.Sprintf("pcapng block length %d in header and %d in trailer differ", total, trailer)}
	}
	return typ, body, start, nil
}

// blockError names the block type in a read error; done here, off the path of blocks that read fine.
func blockError(typ uint32, err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		fe.Reason = strings.Replace(fe.Reason, "pcapng block", fmt.Sprintf("pcapng block of type %d", typ), 1)
	}
	return err
}

func (r *Reader) section(body []byte, start int64) error {
	s := &r.pcapng
	if len(body) < 16 {
		return &FormatError{Offset: start, Reason: "section header block too short"}
	}
	// Only major version 1 exists; libpcap refuses the others, and a reader cannot guess their layout.
	if major := s.order.Uint16(body[4:]); major != 1 {
		return &FormatError{Offset: start, Reason: fmt.Sprintf("unsupported pcapng version %d.%d", major, s.order.Uint16(body[6:]))}
	}
	s.ifaces = s.ifaces[:0]
	return nil
}

func (r *Reader) addInterface(body []byte, start int64) error {
	s := &r.pcapng
	if len(body) < 8 {
		return &FormatError{Offset: start, Reason: "interface description block too short"}
	}
	if len(s.ifaces) >= MaxInterfaces {
		return &FormatError{Offset: start, Reason: fmt.Sprintf("more than %d interfaces in one section", MaxInterfaces)}
	}
	ifc := pcapngInterface{
		linkType: uint32(s.order.Uint16(body)),
		snaplen:  s.order.Uint32(body[4:]),
		units:    1_000_000,
	}
	if ifc.snaplen == 0 || ifc.snaplen > MaxRecord {
		ifc.snaplen = MaxRecord
	}
	if err := r.interfaceOptions(&ifc, body[8:], start); err != nil {
		return err
	}
	if len(s.ifaces) == cap(s.ifaces) {
		// Doubling (append grows large slices by a quarter) keeps the table's allocations within twice
		// its final size.
		grown := make([]pcapngInterface, len(s.ifaces), min(max(8, 2*cap(s.ifaces)), MaxInterfaces))
		copy(grown, s.ifaces)
		s.ifaces = grown
	}
	s.ifaces = append(s.ifaces, ifc)
	r.noteLinkType(ifc.linkType)
	return nil
}

// interfaceOptions picks the timestamp resolution and offset out of an IDB's options. Options cut short
// end the list, as far as timestamps are concerned, the way a missing opt_endofopt does.
func (r *Reader) interfaceOptions(ifc *pcapngInterface, opts []byte, start int64) error {
	order := r.pcapng.order
	for len(opts) >= 4 {
		code, n := order.Uint16(opts), int(order.Uint16(opts[2:]))
		padded := (n + 3) &^ 3
		if code == optEnd || 4+padded > len(opts) {
			return nil
		}
		v := opts[4 : 4+n]
		switch {
		case code == optTSResol && n == 1:
			res := v[0]
			if res&0x80 != 0 {
				if res&0x7f > 63 {
					return &FormatError{Offset: start, Reason: fmt.Sprintf("if_tsresol 2^-%d is too fine", res&0x7f)}
				}
				ifc.units = 1 << (res & 0x7f)
			} else {
				if res > 19 {
					return &FormatError{Offset: start, Reason: fmt.Sprintf("if_tsresol 10^-%d is too fine", res)}
				}
				ifc.units = 1
				for range res {
					ifc.units *= 10
				}
			}
		case code == optTSOffset && n == 8:
			ifc.offset = int64(order.Uint64(v))
		}
		opts = opts[4+padded:]
	}
	return nil
}

func (r *Reader) iface(id uint32, start int64) (*pcapngInterface, error) {
	if int64(id) >= int64(len(r.pcapng.ifaces)) {
		return nil, &FormatError{Offset: start, Reason: fmt.Sprintf("packet on interface %d, but the section describes %d interfaces", id, len(r.pcapng.ifaces))}
	}
	return &r.pcapng.ifaces[id], nil
}

func (r *Reader) enhancedPacket(body []byte, start int64) (Record, error) {
	if len(body) < 20 {
		return Record{}, &FormatError{Offset: start, Reason: "enhanced packet block too short"}
	}
	o := r.pcapng.order
	id := o.Uint32(body)
	ts := uint64(o.Uint32(body[4:]))<<32 | uint64(o.Uint32(body[8:]))
	return r.packet(id, ts, o.Uint32(body[12:]), o.Uint32(body[16:]), body[20:], start)
}

func (r *Reader) obsoletePacket(body []byte, start int64) (Record, error) {
	if len(body) < 20 {
		return Record{}, &FormatError{Offset: start, Reason: "packet block too short"}
	}
	o := r.pcapng.order
	id := uint32(o.Uint16(body))
	ts := uint64(o.Uint32(body[4:]))<<32 | uint64(o.Uint32(body[8:]))
	return r.packet(id, ts, o.Uint32(body[12:]), o.Uint32(body[16:]), body[20:], start)
}

func (r *Reader) simplePacket(body []byte, start int64) (Record, error) {
	if len(body) < 4 {
		return Record{}, &FormatError{Offset: start, Reason: "simple packet block too short"}
	}
	ifc, err := r.iface(0, start)
	if err != nil {
		return Record{}, err
	}
	// An SPB has no captured length: it is the packet length cut to the snap length (and to the block).
	length := r.pcapng.order.Uint32(body)
	caplen := min(length, ifc.snaplen, uint32(len(body)-4))
	return r.packet(0, 0, caplen, length, body[4:], start)
}

// packet checks a packet block's lengths against its interface and block, and converts its timestamp.
// A captured length beyond the interface's snap length is accepted as long as the block holds it.
func (r *Reader) packet(id uint32, ts uint64, caplen, length uint32, data []byte, start int64) (Record, error) {
	ifc, err := r.iface(id, start)
	if err != nil {
		return Record{}, err
	}
	if caplen > MaxRecord {
		return Record{}, &FormatError{Offset: start, Reason: fmt.Sprintf("packet captured length %d exceeds the maximum %d", caplen, MaxRecord)}
	}
	if uint64(caplen) > uint64(len(data)) {
		return Record{}, &FormatError{Offset: start, Reason: fmt.Sprintf("packet captured length %d exceeds its block's %d data bytes", caplen, len(data))}
	}
	sec, nsec := ifc.time(ts)
	return Record{
		Sec:            sec,
		Nsec:           nsec,
		LinkType:       linktype.Type(ifc.linkType),
		Length:         length,
		InterfaceIndex: id,
		Data:           data[:caplen:caplen],
	}, nil
}

func (ifc *pcapngInterface) time(ts uint64) (sec int64, nsec int32) {
	whole, frac := ts/ifc.units, ts%ifc.units
	// frac < units, so frac*1e9/units fits in 64 bits even when the product does not.
	hi, lo := bits.Mul64(frac, 1_000_000_000)
	ns, _ := bits.Div64(hi, lo, ifc.units)
	return int64(whole) + ifc.offset, int32(ns)
}
