package decode

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// dns reads the header and the questions' names of a DNS message (UDP, or TCP with its two-byte
// length prefix) into a fixed buffer, in the dotted text form tshark's dns.qry.name uses, one
// after the other with a NUL between them (a name shows control bytes escaped, never a NUL).
type dns struct {
	layers.BaseLayer
	overTCP bool
	skipped bool // a TCP segment that does not hold a whole DNS message
	name    [MaxDNSName]byte
	nameLen int
	names   int // how many names the buffer holds
}

// maxQuestions bounds the questions read from one message: a forged count costs no more.
const maxQuestions = 64

func (l *dns) LayerType() gopacket.LayerType     { return LayerTypeDNS }
func (l *dns) CanDecode() gopacket.LayerClass    { return LayerTypeDNS }
func (l *dns) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }
func (l *dns) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	l.nameLen, l.names = 0, 0
	if l.overTCP {
		// tshark shows a DNS message over TCP on the segment that completes it; a segment that
		// does not hold a whole message is shown as plain TCP, and so here.
		if len(data) < 2 || int(binary.BigEndian.Uint16(data))+2 > len(data) {
			l.BaseLayer = layers.BaseLayer{Payload: data}
			l.skipped = true
			return nil
		}
		data = data[2:]
	}
	l.skipped = false
	if len(data) < 12 {
		return errTruncated
	}
	l.BaseLayer = layers.BaseLayer{Contents: data[:12], Payload: data[12:]}
	off := 12
	for i := range min(int(binary.BigEndian.Uint16(data[4:6])), maxQuestions) {
		start := l.nameLen
		if i > 0 {
			if l.nameLen >= len(l.name) {
				break
			}
			l.name[l.nameLen] = 0
			l.nameLen++
		}
		next, err := l.readName(data, off)
		if err != nil {
			l.nameLen = start
			if i == 0 {
				return err
			}
			break // tshark shows the questions before one it cannot read
		}
		l.names++
		if next < 0 {
			break // a name tshark replaces with a text: it reads no further
		}
		off = next
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// readName appends the name of the question at off to the buffer and returns where the next
// question starts, or -1 after a name shown as one of tshark's texts.
func (l *dns) readName(msg []byte, off int) (int, error) {
	n := l.nameLen
	first := n
	put := func(b byte) {
		if n < len(l.name) {
			l.name[n] = b
			n++
		}
	}
	jumps := 0
	labels := 0
	end := -1 // where the question continues after the name: after the first pointer or the root label
	for {
		if off >= len(msg) {
			return 0, errTruncated
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0xc0: // compression pointer
			if off+1 >= len(msg) {
				return 0, errTruncated
			}
			jumps++
			if jumps > 64 {
				return l.setName(first, "<Name contains a pointer that loops>")
			}
			if end < 0 {
				end = off + 2
			}
			off = (c&0x3f)<<8 | int(msg[off+1])
			continue
		case 0x00:
		default: // extended label types (0x40, 0x80) are obsolete: tshark names them so
			return l.setName(first, "<Unknown extended label>")
		}
		if c == 0 {
			if end < 0 {
				end = off + 1
			}
			break
		}
		if off+1+c > len(msg) {
			return 0, errTruncated
		}
		if labels > 0 {
			put('.')
		}
		labels++
		label := msg[off+1 : off+1+c]
		for i := 0; i < len(label); {
			b := label[i]
			switch {
			case b >= 0x20 && b < 0x7f:
				put(b)
				i++
			case b < 0x80: // control characters: backslash and three octal digits
				put('\\')
				put('0' + b>>6)
				put('0' + (b>>3)&7)
				put('0' + b&7)
				i++
			default: // UTF-8 passes through; a byte that is not UTF-8 becomes U+FFFD
				r, size := utf8.DecodeRune(label[i:])
				if r == utf8.RuneError && size <= 1 {
					put(0xef)
					put(0xbf)
					put(0xbd)
					i += brokenSequence(label[i:])
					continue
				}
				for _, x := range label[i : i+size] {
					put(x)
				}
				i += size
			}
		}
		off += 1 + c
	}
	// tshark adds the name with the question's type and class: without them, no name.
	if end+4 > len(msg) {
		return 0, errTruncated
	}
	if labels == 0 {
		for i := 0; i < len("<Root>"); i++ {
			put("<Root>"[i])
		}
	}
	l.nameLen = n
	return end + 4, nil
}

// brokenSequence is how many bytes of an invalid UTF-8 sequence tshark replaces with one U+FFFD:
// the lead byte and the continuation bytes that follow it, up to the length the lead announces.
func brokenSequence(b []byte) int {
	want := 1
	switch {
	case b[0] >= 0xf0 && b[0] < 0xf8:
		want = 4
	case b[0] >= 0xe0:
		want = 3
	case b[0] >= 0xc0:
		want = 2
	}
	n := 1
	for n < want && n < len(b) && b[n]&0xc0 == 0x80 {
		n++
	}
	return n
}

// setName stores, from byte at on, one of the texts tshark shows in place of a name it cannot
// expand.
func (l *dns) setName(at int, text string) (int, error) {
	l.nameLen = at + copy(l.name[at:], text)
	return -1, nil
}
