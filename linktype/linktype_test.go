package linktype

import "testing"

func TestString(t *testing.T) {
	for _, c := range []struct {
		t    Type
		want string
	}{
		{Ethernet, "Ethernet"},
		{Null, "Null"},
		{IEEE80211Radio, "RadioTap"},
		{LinuxSLL, "Linux SLL"},
		{LinuxSLL2, "Linux SLL2"},
		{200, "200"},         // below 256, unknown to gopacket
		{1 << 20, "1048576"}, // beyond gopacket's 8 bits
	} {
		if got := c.t.String(); got != c.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint32(c.t), got, c.want)
		}
	}
}
