package replay

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Mode is how the replayer spaces packets in time, as tcpreplay does.
type Mode int

const (
	// Multiplier keeps the capture's own gaps, divided by a factor (2 = twice as fast).
	Multiplier Mode = iota
	// PPS sends a fixed number of packets per second.
	PPS
	// Mbps sends a fixed number of megabits (10^6 bits) of frame data per second.
	Mbps
	// TopSpeed sends as fast as the target takes packets.
	TopSpeed
)

// Pace is a Mode and its rate (unused for TopSpeed).
type Pace struct {
	Mode Mode
	Rate float64
}

// DefaultPace is tcpreplay's default: the capture's own timing.
var DefaultPace = Pace{Mode: Multiplier, Rate: 1}

func (p Pace) String() string {
	switch p.Mode {
	case Multiplier:
		return fmt.Sprintf("multiplier %g", p.Rate)
	case PPS:
		return fmt.Sprintf("%g packets/s", p.Rate)
	case Mbps:
		return fmt.Sprintf("%g Mbit/s", p.Rate)
	case TopSpeed:
		return "top speed"
	}
	return fmt.Sprintf("mode %d", int(p.Mode))
}

// Validate rejects rates that cannot pace anything.
func (p Pace) Validate() error {
	switch p.Mode {
	case TopSpeed:
		return nil
	case Multiplier, PPS, Mbps:
		if math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) || p.Rate <= 0 {
			return fmt.Errorf("pace: %s: the rate must be a positive number", p)
		}
		return nil
	}
	return fmt.Errorf("pace: unknown mode %d", int(p.Mode))
}

// PaceFlags holds the four mutually exclusive pacing flags as given on a command line.
type PaceFlags struct {
	Multiplier, PPS, Mbps          float64
	TopSpeed                       bool
	MultiplierSet, PPSSet, MbpsSet bool
}

// ErrPaceConflict is returned when more than one pacing flag is given.
var ErrPaceConflict = errors.New("give only one of --multiplier, --pps, --mbps, --top-speed")

// Pace turns the flags into a Pace; none given means tcpreplay's default, the
// capture's own timing.
func (f PaceFlags) Pace() (Pace, error) {
	var chosen []Pace
	if f.MultiplierSet {
		chosen = append(chosen, Pace{Multiplier, f.Multiplier})
	}
	if f.PPSSet {
		chosen = append(chosen, Pace{PPS, f.PPS})
	}
	if f.MbpsSet {
		chosen = append(chosen, Pace{Mbps, f.Mbps})
	}
	if f.TopSpeed {
		chosen = append(chosen, Pace{Mode: TopSpeed})
	}
	switch len(chosen) {
	case 0:
		return DefaultPace, nil
	case 1:
		return chosen[0], chosen[0].Validate()
	}
	return Pace{}, ErrPaceConflict
}

// schedule computes when each packet is due, as an offset from the start of
// the run. Offsets come from exact sums (capture time, packet count, bit count)
// rather than from the previous send, so sleeping late once never shifts the
// packets after it: the run cannot drift.
type schedule struct {
	pace Pace

	n       uint64        // packets scheduled so far
	bits    float64       // bits of the frames scheduled so far
	virtual time.Duration // capture time elapsed so far, gaps summed
	prevTS  time.Time
	started bool
}

func newSchedule(p Pace) *schedule { return &schedule{pace: p} }

// next returns the due offset of a packet whose frame has size bytes.
func (s *schedule) next(ts time.Time, size int) time.Duration {
	var due time.Duration
	switch s.pace.Mode {
	case Multiplier:
		// Gaps are summed rather than measured from the first packet so that a
		// timestamp going backwards (reordered captures, a clock step) costs no
		// wait and does not hold back everything after it.
		if s.started {
			if gap := ts.Sub(s.prevTS); gap > 0 {
				s.virtual += gap
			}
		}
		s.prevTS, s.started = ts, true
		due = time.Duration(float64(s.virtual) / s.pace.Rate)
	case PPS:
		due = time.Duration(float64(s.n) * float64(time.Second) / s.pace.Rate)
	case Mbps:
		due = time.Duration(s.bits * float64(time.Second) / (s.pace.Rate * 1e6))
	}
	s.n++
	s.bits += float64(size) * 8
	return due
}

// nextLoop joins the next pass over the capture onto this one: its first
// packet is due right after the last packet of the previous pass.
func (s *schedule) nextLoop() { s.started = false }
