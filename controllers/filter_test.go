package controllers

import (
	"strings"
	"testing"
)

// These need no API server: the envtest suite checks that the message reaches status.
func TestSensorFilterNamesTheInterface(t *testing.T) {
	for _, c := range []struct {
		expr   string
		ifaces []string
		want   string // "" for accepted
	}{
		{"", []string{"any"}, ""},
		{"vlan 100 and tcp", []string{"eth0", "eth1"}, ""},
		{"tcp port 443 and (", []string{"eth0"}, "syntax error (interface eth0 as Ethernet)"},
		{"vlan", []string{"eth0", "any"}, "no VLAN support for Linux cooked v1 (interface any as Linux SLL)"},
		{"ether host 1:2:3:4:5:6", []string{"any"}, "(interface any as Linux SLL)"},
	} {
		err := checkSensorFilter(c.expr, c.ifaces, 1514)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q on %v: %v", c.expr, c.ifaces, err)
		case c.want != "" && (err == nil || !strings.HasSuffix(err.Error(), c.want)):
			t.Errorf("%q on %v: got %v, want ...%s", c.expr, c.ifaces, err, c.want)
		}
	}
}

// The message is libpcap's, as before the operator shared the sensors' compiler.
func TestPipelineFilterMessageIsLibpcaps(t *testing.T) {
	err := checkPipelineFilter("host 10.0.0.300")
	if err == nil || err.Error() != "invalid IPv4 address '10.0.0.300'" {
		t.Fatalf("got %v", err)
	}
	if err := checkPipelineFilter(""); err != nil {
		t.Fatal(err)
	}
}
