package query

import (
	"bufio"
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
	lt layers.LinkType
}

func newPcapWriter(out io.Writer, lt layers.LinkType) (*pcapWriter, error) {
	bw := bufio.NewWriterSize(out, 1<<16)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(snapLen, lt); err != nil {
		return nil, err
	}
	return &pcapWriter{bw: bw, w: w, lt: lt}, nil
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
	lt          layers.LinkType
}

func newPcapngWriter(out io.Writer, first store.Packet) (*pcapngWriter, error) {
	bw := bufio.NewWriterSize(out, 1<<16)
	k := ngKey{first.Node, first.Interface, first.LinkType}
	w, err := pcapgo.NewNgWriterInterface(bw, ngInterface(k), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "capfleet query packets"},
	})
	if err != nil {
		return nil, err
	}
	return &pcapngWriter{bw: bw, w: w, ifaces: map[ngKey]int{k: 0}}, nil
}

func ngInterface(k ngKey) pcapgo.NgInterface {
	name := k.iface
	if k.node != "" {
		name = k.node + ":" + k.iface
	}
	return pcapgo.NgInterface{Name: name, LinkType: k.lt, SnapLength: snapLen}
}

func (w *pcapngWriter) write(p store.Packet) error {
	k := ngKey{p.Node, p.Interface, p.LinkType}
	id, ok := w.ifaces[k]
	if !ok {
		var err error
		if id, err = w.w.AddInterface(ngInterface(k)); err != nil {
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
