package replay

import (
	"time"

	"capfleet.dev/capfleet/linktype"
)

// Packet is one captured frame as the replayer needs it. Data is only valid
// until the next call to the Source's Next, as with the capture readers.
type Packet struct {
	Timestamp     time.Time
	CaptureLength int // bytes present in Data
	Length        int // bytes on the wire when captured; > CaptureLength when truncated
	LinkType      linktype.Type
	Data          []byte
}

// Truncated tells whether the capture kept less of the frame than was on the wire.
func (p Packet) Truncated() bool { return p.Length > len(p.Data) }

// Source yields the packets of one pass over a capture, in file order, and
// io.EOF after the last one.
type Source interface {
	Next() (Packet, error)
	Close() error
}

// Opener starts a new pass over the same capture: once for the pre-scan and
// once for every loop, so a loop never needs the whole file in memory.
type Opener func() (Source, error)
