package query

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"capfleet.dev/capfleet/processor/store"
)

// snapLen is the largest frame a sensor keeps (its --snaplen maximum); it goes in the file header.
const snapLen = 262144

// packetWriter writes stored packets as a capture file.
type packetWriter interface {
	write(p store.Packet) error
	flush() error
}

// pcapWriter writes classic pcap with nanosecond timestamps, for packets of a single link type.
type pcapWriter struct {
	bw *bufio.Writer
	w  *pcapgo.Writer
	lt uint32
}

// newPcapWriter writes the file header itself: gopacket's takes an 8-bit link type, and Linux cooked v2
// (276) is what `tcpdump -i any` captures.
func newPcapWriter(out io.Writer, lt uint32) (*pcapWriter, error) {
	bw := bufio.NewWriterSize(out, 1<<16)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond resolution
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snapLen)
	binary.LittleEndian.PutUint32(h[20:], lt)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, err
	}
	return &pcapWriter{bw: bw, w: pcapgo.NewWriterNanos(bw), lt: lt}, nil
}

func (w *pcapWriter) write(p store.Packet) error {
	if p.LinkType != w.lt {
		return fmt.Errorf("packet at %s has link type %d, the pcap file %d: use --format pcapng", p.Timestamp, p.LinkType, w.lt)
	}
	return w.w.WritePacket(captureInfo(p, 0), p.Data)
}

func (w *pcapWriter) flush() error { return w.bw.Flush() }

// pcapngWriter writes pcapng with one interface per (node, interface, link type) met, so packets of
// several link types (or sensors' interfaces) keep theirs and Wireshark shows where each came from.
type pcapngWriter struct {
	bw     *bufio.Writer
	w      *pcapgo.NgWriter
	ifaces map[ngKey]int
}

type ngKey struct {
	node, iface string
	lt          uint32
}

func newPcapngWriter(out io.Writer, first store.Packet) (*pcapngWriter, error) {
	bw := bufio.NewWriterSize(out, 1<<16)
	k := ngKey{first.Node, first.Interface, first.LinkType}
	iface, err := ngInterface(k)
	if err != nil {
		return nil, err
	}
	w, err := pcapgo.NewNgWriterInterface(bw, iface, pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "capfleet query packets"},
	})
	if err != nil {
		return nil, err
	}
	return &pcapngWriter{bw: bw, w: w, ifaces: map[ngKey]int{k: 0}}, nil
}

func ngInterface(k ngKey) (pcapgo.NgInterface, error) {
	name := k.iface
	if k.node != "" {
		name = k.node + ":" + k.iface
	}
	if k.lt > 255 {
		return pcapgo.NgInterface{}, fmt.Errorf("interface %s has link type %d, which this pcapng writer cannot record: use --format pcap (with a --filter or --ip that selects one link type)", name, k.lt)
	}
	return pcapgo.NgInterface{Name: name, LinkType: layers.LinkType(k.lt), SnapLength: snapLen}, nil
}

func (w *pcapngWriter) write(p store.Packet) error {
	k := ngKey{p.Node, p.Interface, p.LinkType}
	id, ok := w.ifaces[k]
	if !ok {
		iface, err := ngInterface(k)
		if err != nil {
			return err
		}
		if id, err = w.w.AddInterface(iface); err != nil {
			return err
		}
		w.ifaces[k] = id
	}
	return w.w.WritePacket(captureInfo(p, id), p.Data)
}

func (w *pcapngWriter) flush() error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	return w.bw.Flush()
}

func captureInfo(p store.Packet, iface int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: p.Timestamp, CaptureLength: len(p.Data), Length: max(p.OrigLen, len(p.Data)), InterfaceIndex: iface}
}
