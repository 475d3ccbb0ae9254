// Package pcapfile reads capture files the way libpcap does: classic pcap (microsecond, nanosecond and
// Kuznetzov-patched, either byte order, versions 2.0 to 2.4) and pcapng (any number of sections, each
// with its own byte order and interfaces, each interface with its own link type, snap length and
// timestamp resolution), plain or gzip-compressed.
//
// Where libpcap gives up but the data is sound, the reader goes on: records longer than the file's snap
// length (up to MaxRecord), pcapng interfaces that differ in link type or snap length, sections that
// change byte order. A truncated file or a record with an absurd length ends the read with a
// *FormatError naming the byte offset of that record, after every packet before it has been delivered.
//
// Bound on memory: on plain input a Reader allocates at most 8 MiB over its whole life, whatever the
// input (TestAllocationBound): a 64 KiB read buffer, one record buffer reused for every packet and grown
// by doublings to at most MaxRecord plus pcapng block overhead, at most MaxInterfaces interface
// descriptions per pcapng section, and the list of distinct link types. Gzip input adds the inflater's
// fixed state plus, per gzip member, its header's extra field (at most 64 KiB, freed after the header).
// Reading a packet allocates nothing once the buffer holds the largest record seen.
package pcapfile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"capfleet.dev/capfleet/linktype"
)

const (
	// MaxRecord is the largest captured length accepted for one packet: libpcap's MAXIMUM_SNAPLEN. A record
	// claiming more is treated as corrupt, as libpcap does for every common link type.
	MaxRecord = 262144
	// maxBlock bounds one pcapng block we buffer: a packet of MaxRecord bytes plus libpcap's allowance for
	// block headers and options (MAX_BLOCKSIZE_FOR_SNAPLEN).
	maxBlock = MaxRecord + 131072
	// MaxInterfaces bounds the interface descriptions kept per pcapng section, so a file made of nothing but
	// tiny IDBs cannot grow the table without limit.
	MaxInterfaces = 65536

	readBufferSize = 64 << 10
)

// ErrTruncated is wrapped by the error returned when the input ends inside a header or record.
var ErrTruncated = errors.New("file ends mid-record")

// FormatError reports corrupt or truncated input at a byte offset of the (decompressed) stream.
type FormatError struct {
	Offset int64
	Reason string
	Err    error // ErrTruncated, or an I/O error from the underlying reader, or nil
}

func (e *FormatError) Error() string {
	if e.Err != nil && !errors.Is(e.Err, ErrTruncated) {
		return fmt.Sprintf("offset %d: %s: %v", e.Offset, e.Reason, e.Err)
	}
	return fmt.Sprintf("offset %d: %s", e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Packet is one captured frame. Data is valid until the next call to Next.
type Packet struct {
	Timestamp time.Time
	// CaptureLength is len(Data). It may exceed the file's or interface's snap length (libpcap would cut
	// such a record to the snap length; we keep every byte the file holds), never MaxRecord.
	CaptureLength int
	// Length is the frame's length on the wire, as the file records it.
	Length int
	// LinkType is the interface's link type.
	LinkType linktype.Type
	// InterfaceIndex is the interface's index within its pcapng section (always 0 for pcap).
	InterfaceIndex int
	Data           []byte
}

// Record is a packet as the reader holds it: the capture time as seconds and nanoseconds, with a
// time.Time built only when asked for (Time), and 32-bit lengths. At 48 bytes against Packet's 80 it is
// what a loop over millions of packets should take (NextRecord). Data is valid until the next call to
// Next or NextRecord.
type Record struct {
	Sec  int64 // capture time: seconds since the epoch (pcapng's 64-bit timestamps need all 64 bits)
	Nsec int32 // and nanoseconds, 0 to 999,999,999
	// LinkType is the interface's link type.
	LinkType linktype.Type
	// Length is the frame's length on the wire, as the file records it; len(Data) is the captured length.
	Length uint32
	// InterfaceIndex is the interface's index within its pcapng section (always 0 for pcap).
	InterfaceIndex uint32
	Data           []byte
}

// Time is the capture time, in UTC.
func (rec *Record) Time() time.Time { return time.Unix(rec.Sec, int64(rec.Nsec)).UTC() }

// UnixNano is the capture time in nanoseconds since the epoch; like time.Time's, it is undefined for
// times beyond the years 1678 to 2262.
func (rec *Record) UnixNano() int64 { return rec.Sec*1e9 + int64(rec.Nsec) }

// Packet is the record with its time as a time.Time and lengths as ints.
func (rec *Record) Packet() Packet {
	return Packet{
		Timestamp:      rec.Time(),
		CaptureLength:  len(rec.Data),
		Length:         int(rec.Length),
		LinkType:       rec.LinkType,
		InterfaceIndex: int(rec.InterfaceIndex),
		Data:           rec.Data,
	}
}

// Reader reads packets from one capture file.
type Reader struct {
	in      *bufio.Reader
	off     int64 // bytes consumed from in
	closers []io.Closer
	format  string
	gzip    bool
	buf     []byte
	err     error // sticky: once set, every Next returns it

	ng bool // pcapng, else classic pcap
	// win is the part of in's buffer that classic pcap records are cut from (see nextPcap); winUsed of
	// the bytes peeked before it are handed out and not yet discarded from in.
	win          []byte
	winUsed      int
	linkTypes    []linktype.Type // distinct link types declared so far, in order of appearance
	seenLinkType *[1 << 10]uint64

	pcap   pcapState
	pcapng pcapngState
}

// Open opens a capture file by path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.closers = append(r.closers, f)
	return r, nil
}

// NewReader reads the file header from src (sniffing pcap, pcapng and gzip) and returns a Reader
// positioned at the first record.
func NewReader(src io.Reader) (*Reader, error) {
	r := &Reader{in: bufio.NewReaderSize(src, readBufferSize), seenLinkType: new([1 << 10]uint64)}
	magic, err := r.in.Peek(4)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(r.in)
		if err != nil {
			return nil, &FormatError{Offset: 0, Reason: "bad gzip header", Err: err}
		}
		r.closers = append(r.closers, zr)
		r.gzip = true
		r.in = bufio.NewReaderSize(zr, readBufferSize)
		magic, err = r.in.Peek(4)
	}
	if len(magic) < 4 {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &FormatError{Offset: 0, Reason: fmt.Sprintf("%d bytes, too short for a capture file header", len(magic)), Err: ErrTruncated}
		}
		return nil, &FormatError{Offset: 0, Reason: "reading the file header", Err: err}
	}
	switch m := binary.BigEndian.Uint32(magic); m {
	case pcapngBlockSHB:
		err = r.openPcapng()
	default:
		err = r.openPcap(m)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Next returns the next packet, io.EOF at a clean end of input, or a *FormatError naming the byte offset of
// the record that could not be read. Packets before a bad record are all delivered first.
func (r *Reader) Next() (Packet, error) {
	var rec Record
	if err := r.read(&rec); err != nil {
		return Packet{}, err
	}
	return rec.Packet(), nil
}

// NextRecord is Next without building a Packet: the cheaper call per packet.
func (r *Reader) NextRecord() (Record, error) {
	var rec Record
	err := r.read(&rec)
	return rec, err
}

// read fills rec with the next packet; on an error rec is left zero and the error sticks.
func (r *Reader) read(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	var err error
	if r.ng {
		*rec, err = r.nextPcapng()
	} else {
		err = r.nextPcap(rec)
	}
	if err != nil {
		r.err = err
		*rec = Record{}
	}
	return err
}

// Format names the file format: "pcap", "pcap-ns" or "pcapng", followed by " (gzip)" when compressed.
func (r *Reader) Format() string {
	if r.gzip {
		return r.format + " (gzip)"
	}
	return r.format
}

// LinkTypes lists the distinct link types the file has declared so far (in pcapng, by the interface
// description blocks read up to now).
func (r *Reader) LinkTypes() []linktype.Type { return r.linkTypes }

// Offset is the number of (decompressed) bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// Close releases the gzip stream and the file, if the Reader opened them.
func (r *Reader) Close() error {
	var first error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	r.closers = nil
	return first
}

func (r *Reader) noteLinkType(lt uint32) {
	if lt < 1<<16 {
		// pcapng link types have 16 bits: a bitset of 8 KiB covers them all.
		if r.seenLinkType[lt/64]&(1<<(lt%64)) != 0 {
			return
		}
		r.seenLinkType[lt/64] |= 1 << (lt % 64)
	}
	// Only classic pcap, with its single link type, gets here with a larger value.
	r.linkTypes = append(r.linkTypes, linktype.Type(lt))
}

// fill reads exactly n bytes into the reused buffer. It returns io.EOF only when no byte at all was
// available and eofOK is set; any other shortfall is a truncation error at start.
//
// The returned slice is only valid until the next read: when the read buffer already holds all n bytes,
// it points into that buffer instead of being copied out.
func (r *Reader) fill(n int, start int64, what string, eofOK bool) ([]byte, error) {
	if n <= readBufferSize {
		if b, _ := r.in.Peek(n); len(b) == n {
			_, _ = r.in.Discard(n) // cannot fail: Peek has the bytes
			r.off += int64(n)
			// Capped so that an append by the caller copies instead of writing over unread input.
			return b[:n:n], nil
		}
	}
	if n > cap(r.buf) {
		r.grow(n)
	}
	b := r.buf[:n:n]
	got, err := io.ReadFull(r.in, b)
	r.off += int64(got)
	if err == nil {
		return b, nil
	}
	if got == 0 && err == io.EOF && eofOK {
		return nil, io.EOF
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, &FormatError{Offset: start, Reason: fmt.Sprintf("truncated %s: need %d bytes, file has %d", what, n, got), Err: ErrTruncated}
	}
	return nil, &FormatError{Offset: start, Reason: "reading " + what, Err: err}
}

// grow sizes the buffer to the next power of two that holds n (never beyond maxBlock), so a file of
// growing packets reallocates only a few times.
func (r *Reader) grow(n int) {
	c := 2048
	for c < n {
		c <<= 1
	}
	if c > maxBlock {
		c = maxBlock
	}
	r.buf = make([]byte, c)
}

// skip discards n bytes without buffering them.
func (r *Reader) skip(n int64, start int64, what string) error {
	got, err := r.in.Discard(int(min(n, int64(^uint(0)>>1))))
	r.off += int64(got)
	if int64(got) == n {
		return nil
	}
	if err == nil || err == io.EOF {
		return &FormatError{Offset: start, Reason: fmt.Sprintf("truncated %s: need %d bytes, file has %d", what, n, got), Err: ErrTruncated}
	}
	return &FormatError{Offset: start, Reason: "reading " + what, Err: err}
}
