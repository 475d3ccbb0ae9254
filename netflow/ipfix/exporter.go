// Package ipfix exports capfleet's flows as IPFIX (RFC 7011) over UDP, so that collectors built for
// routers (nfdump, ntopng, ElastiFlow-style stacks) take them as they take a router's.
//
// A bidirectional flow becomes two unidirectional data records, as a router meters them: originator to
// responder with the originator's packets and IP bytes, and back with the responder's (skipped when the
// responder sent nothing). Both carry the flow's first and last packet times. IPv4 and IPv6 flows have
// a template each; templates go out in the first message and again every TemplateRefresh messages or
// TemplateInterval, as RFC 7011 section 8.4 asks of an exporter over UDP.
package ipfix

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"capfleet.dev/capfleet/processor/flow"
	"capfleet.dev/capfleet/processor/store"
)

// Config tunes an Exporter. Zero values pick the defaults.
type Config struct {
	ObservationDomain uint32
	MaxMessage        int           // bytes of one IPFIX message (default 1400: one Ethernet frame)
	TemplateRefresh   int           // resend templates after this many messages (default 20)
	TemplateInterval  time.Duration // or after this long (default 30s)
}

// Template IDs and their element lists: (IE id, length).
const (
	templateV4 = 256
	templateV6 = 257
)

type element struct{ id, length uint16 }

func elements(v6 bool) []element {
	src, dst, icmp := element{8, 4}, element{12, 4}, element{32, 2} // sourceIPv4Address, destinationIPv4Address, icmpTypeCodeIPv4
	if v6 {
		src, dst, icmp = element{27, 16}, element{28, 16}, element{139, 2} // the IPv6 ones
	}
	return []element{
		src, dst,
		{7, 2},   // sourceTransportPort
		{11, 2},  // destinationTransportPort
		{4, 1},   // protocolIdentifier
		{6, 2},   // tcpControlBits
		icmp,     //
		{58, 2},  // vlanId
		{2, 8},   // packetDeltaCount
		{1, 8},   // octetDeltaCount
		{152, 8}, // flowStartMilliseconds
		{153, 8}, // flowEndMilliseconds
	}
}

func recordLen(v6 bool) int {
	n := 0
	for _, e := range elements(v6) {
		n += int(e.length)
	}
	return n
}

// templateSet is the template set announcing both templates.
func templateSet() []byte {
	b := make([]byte, 4, 64)
	for _, v6 := range []bool{false, true} {
		id := uint16(templateV4)
		if v6 {
			id = templateV6
		}
		els := elements(v6)
		b = binary.BigEndian.AppendUint16(b, id)
		b = binary.BigEndian.AppendUint16(b, uint16(len(els)))
		for _, e := range els {
			b = binary.BigEndian.AppendUint16(b, e.id)
			b = binary.BigEndian.AppendUint16(b, e.length)
		}
	}
	binary.BigEndian.PutUint16(b, 2)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// Stats are what an Exporter sent.
type Stats struct {
	Messages   uint64
	Records    uint64 // data records (two per flow with packets both ways)
	SendErrors uint64
}

// Exporter sends IPFIX messages over UDP to one or more collectors. Not safe for concurrent use.
type Exporter struct {
	cfg          Config
	conns        []net.Conn
	seq          uint32 // data records sent before the next message (RFC 7011: per observation domain)
	sinceTmpl    int
	lastTmpl     time.Time
	sets         [2][]byte // pending data records, IPv4 and IPv6
	records      uint32    // records in sets
	Stats        Stats
	tmpl         []byte
	now          func() time.Time
	templateSent bool
}

// Dial returns an Exporter sending to every address (host:port, UDP).
func Dial(addrs []string, cfg Config) (*Exporter, error) {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 1400
	}
	if cfg.MaxMessage < 512 || cfg.MaxMessage > 65535 {
		return nil, fmt.Errorf("ipfix: message size %d: want 512 to 65535 bytes", cfg.MaxMessage)
	}
	if cfg.TemplateRefresh <= 0 {
		cfg.TemplateRefresh = 20
	}
	if cfg.TemplateInterval <= 0 {
		cfg.TemplateInterval = 30 * time.Second
	}
	e := &Exporter{cfg: cfg, tmpl: templateSet(), now: time.Now}
	for _, a := range addrs {
		c, err := net.Dial("udp", a)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("ipfix: %s: %w", a, err)
		}
		e.conns = append(e.conns, c)
	}
	if len(e.conns) == 0 {
		return nil, fmt.Errorf("ipfix: no collector address")
	}
	return e, nil
}

// Add queues the data records of r, sending a message when one is full. A send error is counted and
// returned; the records are not resent (UDP export is lossy by design; the sequence number tells the
// collector how much it missed).
func (e *Exporter) Add(r *flow.Record) error {
	orig, err1 := netip.ParseAddr(r.OrigH)
	resp, err2 := netip.ParseAddr(r.RespH)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("ipfix: flow %s: addresses %q and %q", r.UID, r.OrigH, r.RespH)
	}
	end := r.LastTS
	if end.IsZero() {
		end = r.TS
	}
	return e.add(biflow{uid: r.UID, orig: orig, resp: resp, origPort: r.OrigP, respPort: r.RespP, proto: r.IPProto, vlan: r.VLAN,
		origFlags: r.OrigFlags, respFlags: r.RespFlags, origPkts: r.OrigPkts, respPkts: r.RespPkts,
		origBytes: r.OrigIPBytes, respBytes: r.RespIPBytes, start: r.TS, end: end})
}

// AddStored queues a flow as the pipeline stores it. Stored flows keep the TCP flags of both
// directions together; each direction's record carries them all.
func (e *Exporter) AddStored(f *store.Flow) error {
	return e.add(biflow{uid: f.UID, orig: f.OrigAddr, resp: f.RespAddr, origPort: f.OrigPort, respPort: f.RespPort, proto: f.Proto,
		vlan: f.VLAN, origFlags: uint16(f.TCPFlags), respFlags: uint16(f.TCPFlags), origPkts: f.OrigPkts, respPkts: f.RespPkts,
		origBytes: f.OrigIPBytes, respBytes: f.RespIPBytes, start: f.Start, end: f.End})
}

// biflow is what both kinds of flow record say about a connection.
type biflow struct {
	uid                  string
	orig, resp           netip.Addr
	origPort, respPort   uint16
	proto                uint8
	vlan                 uint16
	origFlags, respFlags uint16
	origPkts, respPkts   uint64
	origBytes, respBytes uint64
	start, end           time.Time
}

func (e *Exporter) add(f biflow) error {
	orig, resp := f.orig.Unmap(), f.resp.Unmap()
	if !orig.IsValid() || !resp.IsValid() || orig.Is4() != resp.Is4() {
		return fmt.Errorf("ipfix: flow %s: addresses %s and %s", f.uid, orig, resp)
	}
	start, end := f.start.UnixMilli(), f.end.UnixMilli()
	var icmp uint16
	sport, dport := f.origPort, f.respPort
	if f.proto == 1 || f.proto == 58 {
		// Zeek's ICMP "ports" are the type and code; IPFIX has an element for them.
		icmp, sport, dport = f.origPort<<8|f.respPort&0xff, 0, 0
	}
	var err error
	add := func(src, dst netip.Addr, sp, dp uint16, flags uint16, pkts, bytes uint64) {
		if pkts == 0 {
			return
		}
		v6 := src.Is6()
		if e.size()+recordLen(v6) > e.cfg.MaxMessage {
			if ferr := e.Flush(); ferr != nil && err == nil {
				err = ferr
			}
		}
		i := 0
		if v6 {
			i = 1
		}
		b := e.sets[i]
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, sp)
		b = binary.BigEndian.AppendUint16(b, dp)
		b = append(b, f.proto)
		b = binary.BigEndian.AppendUint16(b, flags)
		b = binary.BigEndian.AppendUint16(b, icmp)
		b = binary.BigEndian.AppendUint16(b, f.vlan)
		b = binary.BigEndian.AppendUint64(b, pkts)
		b = binary.BigEndian.AppendUint64(b, bytes)
		b = binary.BigEndian.AppendUint64(b, uint64(start))
		b = binary.BigEndian.AppendUint64(b, uint64(end))
		e.sets[i] = b
		e.records++
	}
	add(orig, resp, sport, dport, f.origFlags, f.origPkts, f.origBytes)
	add(resp, orig, dport, sport, f.respFlags, f.respPkts, f.respBytes)
	return err
}

// size is the message that Flush would send now.
func (e *Exporter) size() int {
	n := 16 + len(e.tmpl) // header; the template set counted always, so a refresh never overflows
	for _, s := range e.sets {
		if len(s) > 0 {
			n += 4 + len(s)
		}
	}
	return n
}

// Flush sends the queued records, with the templates when they are due.
func (e *Exporter) Flush() error {
	if e.records == 0 {
		return nil
	}
	now := e.now()
	msg := make([]byte, 16, e.size())
	if !e.templateSent || e.sinceTmpl >= e.cfg.TemplateRefresh || now.Sub(e.lastTmpl) >= e.cfg.TemplateInterval {
		msg = append(msg, e.tmpl...)
		e.templateSent, e.sinceTmpl, e.lastTmpl = true, 0, now
	}
	for i, s := range e.sets {
		if len(s) == 0 {
			continue
		}
		msg = binary.BigEndian.AppendUint16(msg, uint16(templateV4+i))
		msg = binary.BigEndian.AppendUint16(msg, uint16(4+len(s)))
		msg = append(msg, s...)
		e.sets[i] = s[:0]
	}
	binary.BigEndian.PutUint16(msg, 10)
	binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
	binary.BigEndian.PutUint32(msg[4:], uint32(now.Unix()))
	binary.BigEndian.PutUint32(msg[8:], e.seq)
	binary.BigEndian.PutUint32(msg[12:], e.cfg.ObservationDomain)
	e.seq += e.records
	e.Stats.Records += uint64(e.records)
	e.records = 0
	e.sinceTmpl++
	var err error
	for _, c := range e.conns {
		if _, werr := c.Write(msg); werr != nil {
			e.Stats.SendErrors++
			if err == nil {
				err = fmt.Errorf("ipfix: send to %s: %w", c.RemoteAddr(), werr)
			}
		}
	}
	e.Stats.Messages++
	return err
}

// Close sends what is queued and closes the sockets.
func (e *Exporter) Close() error {
	err := e.Flush()
	for _, c := range e.conns {
		c.Close()
	}
	return err
}
