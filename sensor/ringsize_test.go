package sensor

import "testing"

func TestAutoRingBlocks(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                      string
		speedMbps, snaplen, rings int
		wantMiB                   int
	}{
		{"1 Gbit/s: the floor", 1000, MaxSnapLen, 1, 8},
		{"10 Gbit/s: 16 ms of line rate", 10000, MaxSnapLen, 1, 20},
		{"unknown speed: as 10 Gbit/s", 0, MaxSnapLen, 1, 20},
		{"25 Gbit/s", 25000, MaxSnapLen, 1, 48},
		{"100 Gbit/s: the ceiling", 100000, MaxSnapLen, 1, 64},
		{"100 Gbit/s over 4 fanout rings", 100000, MaxSnapLen, 4, 48},
		{"40 Gbit/s, headers only (snaplen 96)", 40000, 96, 1, 11},
	} {
		got := autoRingBlocks(c.speedMbps, c.snaplen, mib, c.rings)
		if got != c.wantMiB {
			t.Errorf("%s: %d blocks of 1 MiB, want %d", c.name, got, c.wantMiB)
		}
	}
	// Blocks are whole: a ring of 4 MiB blocks rounds up, never below two.
	if got := autoRingBlocks(10000, MaxSnapLen, 4*mib, 1); got != 5 {
		t.Errorf("10 Gbit/s in 4 MiB blocks: %d, want 5", got)
	}
	if got := autoRingBlocks(1000, MaxSnapLen, 64*mib, 1); got != 2 {
		t.Errorf("1 Gbit/s in 64 MiB blocks: %d, want 2", got)
	}
}

// The speed comes from the driver, inside the capture namespace: a veth says 10 Gbit/s.
func TestLinkSpeedOfVeth(t *testing.T) {
	n := newVethNS(t)
	var speed int
	if err := inNetNS(n.Path, func() error { speed = linkSpeedMbps(n.Rx); return nil }); err != nil {
		t.Fatal(err)
	}
	if speed != 10000 {
		t.Fatalf("veth speed %d Mbit/s, want 10000", speed)
	}
	if s := linkSpeedMbps("cf-no-such-if"); s != 0 {
		t.Fatalf("a missing interface has speed %d", s)
	}
}

// A ring sized from the interface comes in blocks of a fifth of it, 1 to 4 MiB in powers of two, and
// larger when one packet of the snaplen would not fit.
func TestAutoBlockSize(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ ringMiB, snaplen, wantMiB int }{
		{8, MaxSnapLen, 1},  // the smallest ring: 8 blocks
		{10, MaxSnapLen, 2}, // 5 blocks
		{16, MaxSnapLen, 2}, // 8 blocks
		{20, MaxSnapLen, 4}, // a veth or an unknown speed: 5 blocks
		{64, MaxSnapLen, 4}, // the largest
		{2, MaxSnapLen, 1},  // shrunk to a memory limit
		{20, 3 << 20, 4},    // a 3 MiB packet and its header fit a 4 MiB block
		{20, 5 << 20, 8},    // beyond 4 MiB: what holds one packet
	} {
		if got := autoBlockSize(c.ringMiB*mib, c.snaplen) / mib; got != c.wantMiB {
			t.Errorf("ring %d MiB, snaplen %d: blocks of %d MiB, want %d", c.ringMiB, c.snaplen, got, c.wantMiB)
		}
	}
}
