package replay

import (
	"fmt"
	"strings"
	"time"
)

// Summary is the outcome of a run, printed like tcpreplay's closing lines.
type Summary struct {
	Progress
	Elapsed      time.Duration
	Target       string
	FirstFailure error // why the first failed packet failed, if any did
}

// Rates returns bytes/s, Mbit/s and packets/s actually achieved.
func (s Summary) Rates() (bps, mbps, pps float64) {
	sec := s.Elapsed.Seconds()
	if sec <= 0 {
		return 0, 0, 0
	}
	bps = float64(s.BytesSent) / sec
	return bps, bps * 8 / 1e6, float64(s.PacketsSent) / sec
}

func (s Summary) String() string {
	bps, mbps, pps := s.Rates()
	var b strings.Builder
	fmt.Fprintf(&b, "Actual: %d packets (%d bytes) sent in %.6f seconds\n", s.PacketsSent, s.BytesSent, s.Elapsed.Seconds())
	fmt.Fprintf(&b, "Rated: %.1f Bps, %.2f Mbps, %.2f pps\n", bps, mbps, pps)
	fmt.Fprintf(&b, "Statistics for %s:\n", s.Target)
	fmt.Fprintf(&b, "\tSuccessful packets:        %d\n", s.PacketsSent)
	fmt.Fprintf(&b, "\tFailed packets:            %d\n", s.PacketsFailed)
	fmt.Fprintf(&b, "\tTruncated packets:         %d\n", s.PacketsTruncated)
	fmt.Fprintf(&b, "\tLoops completed:           %d\n", s.LoopsDone)
	if s.FirstFailure != nil {
		fmt.Fprintf(&b, "\tFirst failure:             %v\n", s.FirstFailure)
	}
	return b.String()
}
