package replay

import (
	"errors"
	"testing"
	"time"
)

func TestPaceFlags(t *testing.T) {
	cases := []struct {
		name  string
		flags PaceFlags
		want  Pace
		err   string
	}{
		{"none is the capture's timing", PaceFlags{}, Pace{Multiplier, 1}, ""},
		{"multiplier", PaceFlags{Multiplier: 2.5, MultiplierSet: true}, Pace{Multiplier, 2.5}, ""},
		{"pps", PaceFlags{PPS: 2000, PPSSet: true}, Pace{PPS, 2000}, ""},
		{"mbps", PaceFlags{Mbps: 10, MbpsSet: true}, Pace{Mbps, 10}, ""},
		{"top speed", PaceFlags{TopSpeed: true}, Pace{Mode: TopSpeed}, ""},
		{"two given", PaceFlags{PPS: 1, PPSSet: true, TopSpeed: true}, Pace{}, ErrPaceConflict.Error()},
		{"three given", PaceFlags{PPS: 1, PPSSet: true, Mbps: 1, MbpsSet: true, Multiplier: 1, MultiplierSet: true}, Pace{}, ErrPaceConflict.Error()},
		{"zero pps", PaceFlags{PPSSet: true}, Pace{PPS, 0}, "pace: 0 packets/s: the rate must be a positive number"},
		{"negative multiplier", PaceFlags{Multiplier: -1, MultiplierSet: true}, Pace{Multiplier, -1}, "pace: multiplier -1: the rate must be a positive number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.flags.Pace()
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
	if _, err := (PaceFlags{PPSSet: true, PPS: 1, TopSpeed: true}).Pace(); !errors.Is(err, ErrPaceConflict) {
		t.Fatalf("conflict is not ErrPaceConflict: %v", err)
	}
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestScheduleMultiplierKeepsGapsDivided(t *testing.T) {
	s := newSchedule(Pace{Multiplier, 4})
	// Gaps 0, 1 s, a 0.5 s step backwards (costs nothing), 2 s.
	ts := []time.Time{t0, t0.Add(time.Second), t0.Add(500 * time.Millisecond), t0.Add(2500 * time.Millisecond)}
	want := []time.Duration{0, 250 * time.Millisecond, 250 * time.Millisecond, 750 * time.Millisecond}
	for i := range ts {
		if got := s.next(ts[i], 100); got != want[i] {
			t.Errorf("packet %d due at %v, want %v", i, got, want[i])
		}
	}
	// The next pass starts right where the last one ended, not at its first timestamp.
	s.nextLoop()
	if got := s.next(t0, 100); got != 750*time.Millisecond {
		t.Errorf("first packet of loop 2 due at %v, want 750ms", got)
	}
	if got := s.next(t0.Add(time.Second), 100); got != time.Second {
		t.Errorf("second packet of loop 2 due at %v, want 1s", got)
	}
}

func TestScheduleFixedRatesDoNotDrift(t *testing.T) {
	pps := newSchedule(Pace{PPS, 3}) // a gap of 1/3 s cannot be represented exactly in nanoseconds
	var last time.Duration
	for range 3_000_001 {
		last = pps.next(t0, 60)
	}
	if last != time.Duration(1_000_000)*time.Second {
		t.Errorf("packet 3,000,000 at 3 pps due at %v, want 1000000s", last)
	}

	mbps := newSchedule(Pace{Mbps, 8}) // 1 MB/s
	for _, size := range []int{1000, 500_000, 100} {
		last = mbps.next(t0, size)
	}
	if want := time.Duration(501_000) * time.Microsecond; last != want {
		t.Errorf("third frame at 8 Mbit/s due at %v, want %v (after 501,000 bytes)", last, want)
	}
}
