package flow

import (
	"capfleet.dev/capfleet/processor/decode"
)

// Ports is a set of TCP and UDP ports: Zeek's likely_server_ports, the ports it takes as a
// service's when a connection's first packet does not say who opened it.
type Ports struct {
	tcp, udp [1024]uint64
}

// Add puts a port of proto (decode.ProtoTCP or decode.ProtoUDP) in the set.
func (s *Ports) Add(proto uint8, ports ...uint16) {
	b := s.bits(proto)
	if b == nil {
		return
	}
	for _, p := range ports {
		b[p/64] |= 1 << (p % 64)
	}
}

// Has says whether a port of proto is in the set.
func (s *Ports) Has(proto uint8, port uint16) bool {
	b := s.bits(proto)
	return b != nil && b[port/64]&(1<<(port%64)) != 0
}

func (s *Ports) bits(proto uint8) *[1024]uint64 {
	switch proto {
	case decode.ProtoTCP:
		return &s.tcp
	case decode.ProtoUDP:
		return &s.udp
	}
	return nil
}

// ZeekPorts are the ports Zeek's scripts add to likely_server_ports, by script. The tunnels'
// (packet-protocols) are always loaded; each base/protocols script adds its analyzer's.
var ZeekPorts = map[string]struct{ TCP, UDP []uint16 }{
	"base/packet-protocols":     {UDP: []uint16{2123, 2152, 3544, 4789, 5072, 6081}}, // GTP, Teredo, VXLAN, AYIYA, Geneve
	"base/protocols/dce-rpc":    {TCP: []uint16{135}},
	"base/protocols/dhcp":       {UDP: []uint16{67}},
	"base/protocols/dnp3":       {TCP: []uint16{20000}, UDP: []uint16{20000}},
	"base/protocols/dns":        {TCP: []uint16{53}, UDP: []uint16{53, 137, 5353, 5355}},
	"base/protocols/finger":     {TCP: []uint16{79}},
	"base/protocols/ftp":        {TCP: []uint16{21, 2811}},
	"base/protocols/http":       {TCP: []uint16{80, 81, 631, 1080, 3128, 8000, 8080, 8888}},
	"base/protocols/imap":       {TCP: []uint16{143}},
	"base/protocols/irc":        {TCP: []uint16{6666, 6667, 6668, 6669}},
	"base/protocols/krb":        {TCP: []uint16{88}, UDP: []uint16{88}},
	"base/protocols/ldap":       {TCP: []uint16{389, 3268}, UDP: []uint16{389}},
	"base/protocols/modbus":     {TCP: []uint16{502}},
	"base/protocols/mqtt":       {TCP: []uint16{1883}},
	"base/protocols/mysql":      {TCP: []uint16{1434, 3306}},
	"base/protocols/ntp":        {UDP: []uint16{123}},
	"base/protocols/pop3":       {TCP: []uint16{110}},
	"base/protocols/postgresql": {TCP: []uint16{5432}},
	"base/protocols/radius":     {UDP: []uint16{1812}},
	"base/protocols/rdp":        {TCP: []uint16{3389}, UDP: []uint16{3389}},
	"base/protocols/redis":      {TCP: []uint16{6379}},
	"base/protocols/sip":        {UDP: []uint16{5060}},
	"base/protocols/smb":        {TCP: []uint16{139, 445}},
	"base/protocols/smtp":       {TCP: []uint16{25, 587}},
	"base/protocols/snmp":       {UDP: []uint16{161, 162}},
	"base/protocols/socks":      {TCP: []uint16{1080}},
	"base/protocols/ssh":        {TCP: []uint16{22}},
	"base/protocols/ssl":        {TCP: []uint16{443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223}},
	"base/protocols/syslog":     {UDP: []uint16{514}},
	"base/protocols/xmpp":       {TCP: []uint16{5222, 5269}},
}

var zeekDefault = func() *Ports {
	s := &Ports{}
	for _, p := range ZeekPorts {
		s.Add(decode.ProtoTCP, p.TCP...)
		s.Add(decode.ProtoUDP, p.UDP...)
	}
	return s
}()

// ZeekServerPorts is Zeek's likely_server_ports with its default scripts (base/init-default):
// the service ports of every analyzer it loads. The set is shared: do not change it.
func ZeekServerPorts() *Ports { return zeekDefault }
