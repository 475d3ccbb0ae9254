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
