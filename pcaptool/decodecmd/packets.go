package decodecmd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/bpffilter"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/displayfilter"
)

// packets are the decoded packets of a capture file that pass its tcpdump filter (--filter) and
// its display filter (-Y): what both decode and flows read.
type packets struct {
	path      string
	r         *pcapfile.Reader
	filter    *bpffilter.Set
	display   *displayfilter.Filter
	dec       *decode.Decoder
	displayed uint64 // packets the display filter kept out
	// frame is the bytes of the packet fn is called with, valid during the call only.
	frame []byte
}

// openPackets opens a capture with its filters. payload says whether the output reads beyond the
// transport header; the decoder stops there when neither it nor the display filter does.
func openPackets(path, filter, display string, payload bool) (*packets, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := bpffilter.NewSet(filter)
	if err != nil {
		r.Close()
		return nil, err
	}
	d, err := compileDisplay(display)
	if err != nil {
		r.Close()
		return nil, err
	}
	dec := decode.NewDecoder()
	dec.HeadersOnly = !d.NeedsPayload() && !payload
	return &packets{path: path, r: r, filter: f, display: d, dec: dec}, nil
}

func (s *packets) Close() error { return s.r.Close() }

// each calls fn for every packet that passes, numbered among all the file's packets from 1 (as
// frame.number). p is reused: fn must copy what it keeps. A damaged record ends the walk with its
// error, after the packets before it.
func (s *packets) each(fn func(n int, p *decode.Packet)) error {
	var p decode.Packet
	for n := 1; ; n++ {
		pkt, err := s.r.NextRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: after %d packets: %w", s.path, n-1, err)
		}
		if !s.filter.Match(pkt.Data, uint32(pkt.LinkType), int(pkt.Length)) {
			continue
		}
		s.dec.Decode(pkt.Data, pkt.LinkType, pkt.Time(), int(pkt.Length), &p)
		if !s.display.Match(&p, n) {
			s.displayed++
			continue
		}
		s.frame = pkt.Data
		fn(n, &p)
	}
}

// printStats prints what the decoder met and what each filter kept out.
func (s *packets) printStats(w io.Writer) {
	st := &s.dec.Stats
	fmt.Fprintf(w, "packets\t%d\n", st.Packets)
	for r := decode.Reason(0); r < decode.NumReasons; r++ {
		fmt.Fprintf(w, "%s\t%d\n", r, st.ByReason[r])
	}
	fmt.Fprintf(w, "fragments\t%d\n", st.Fragments)
	if s.filter.Active() {
		fmt.Fprintf(w, "filtered_out\t%d\n", s.filter.Rejected)
	}
	if s.display != nil {
		fmt.Fprintf(w, "display_filtered_out\t%d\n", s.displayed)
	}
}

// compileDisplay compiles a -Y filter; an empty one is no filter (nil passes every packet).
func compileDisplay(text string) (*displayfilter.Filter, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	f, err := displayfilter.Compile(text)
	if err != nil {
		if e, ok := err.(*displayfilter.Error); ok {
			return nil, fmt.Errorf("-Y: %s", e.Caret())
		}
		return nil, fmt.Errorf("-Y: %w", err)
	}
	return f, nil
}
