package sensor

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/linktype"
)

// rtnetlink reports the same rx_dropped as sysfs, for every interface here.
func TestLinkStatsMatchSysfs(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		b, err := os.ReadFile("/sys/class/net/" + ifi.Name + "/statistics/rx_dropped")
		if err != nil {
			continue
		}
		want, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		typ, got, err := linkStats(ifi.Index)
		if err != nil {
			t.Fatal(err)
		}
		// rx_dropped only grows: sysfs read first, so netlink may be ahead.
		if got < want {
			t.Errorf("%s: rtnetlink rx_dropped %d, sysfs %d", ifi.Name, got, want)
		}
		b, _ = os.ReadFile("/sys/class/net/" + ifi.Name + "/type")
		if wantType, _ := strconv.Atoi(strings.TrimSpace(string(b))); int(typ) != wantType {
			t.Errorf("%s: rtnetlink type %d, sysfs %d", ifi.Name, typ, wantType)
		}
	}
	l, err := lookupLink("lo")
	if err != nil || l.LinkType != linktype.Ethernet {
		t.Fatalf("lo: %+v, %v", l, err)
	}
}
