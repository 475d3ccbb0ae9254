package sensor

import (
	"testing"

	"capfleet.dev/capfleet/linktype"
)

// The userspace run of the compiled program, used for packets that reached a
// ring before its kernel filter was attached, selects what tcpdump selects.
func TestFilterInUserspaceAgreesWithTcpdump(t *testing.T) {
	file := sharedPcap(t, e2ePcap)
	all, lt := readPcap(t, file)
	for _, expr := range []string{"(udp and not port 53) or ip6", "tcp[tcpflags] & tcp-syn != 0", "greater 1000", ""} {
		f, err := compileFilter(expr, "", lt, MaxSnapLen)
		if err != nil {
			t.Fatal(err)
		}
		var kept [][]byte
		for _, fr := range all {
			if n := f.keep(fr); n > 0 {
				kept = append(kept, fr[:n])
			}
		}
		want := all
		if expr != "" {
			want = tcpdumpSelect(t, file, expr)
		}
		if d := diffMultisets(multiset(want), multiset(kept)); d != "" {
			t.Errorf("filter %q: %s", expr, d)
		}
	}
}

// The program returns the snap length, so the kernel truncates what it keeps.
func TestFilterTruncatesToSnaplen(t *testing.T) {
	f, err := compileFilter("", "", linktype.Ethernet, 96)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.keep(make([]byte, 1500)); n != 96 {
		t.Fatalf("kept %d bytes, want 96", n)
	}
	if n := f.keep(make([]byte, 60)); n != 60 {
		t.Fatalf("kept %d bytes of a 60-byte frame", n)
	}
}
