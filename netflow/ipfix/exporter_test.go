package ipfix

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"capfleet.dev/capfleet/netflow"
	"capfleet.dev/capfleet/processor/flow"
)

// Many flows make many messages: each fits MaxMessage, templates come back every TemplateRefresh
// messages, and the sequence numbers leave no gap for a collector (this project's decoder here; the
// oracle tests in netflow/nfcmd have nfcapd and tshark read the export).
func TestMessagesTemplatesAndSequence(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e, err := Dial([]string{pc.LocalAddr().String()}, Config{ObservationDomain: 9, MaxMessage: 600, TemplateRefresh: 3})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	const flows = 200
	for i := range flows {
		orig, resp := "10.0.0.1", "10.0.0.2"
		if i%2 == 1 {
			orig, resp = "2001:db8::1", "2001:db8::2"
		}
		r := flow.Record{TS: t0, LastTS: t0.Add(time.Second), ConnID: flow.ConnID{OrigH: orig, OrigP: uint16(i), RespH: resp, RespP: 80},
			IPProto: 6, OrigPkts: 2, OrigIPBytes: 100, RespPkts: 1, RespIPBytes: 60}
		if err := e.Add(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	d := netflow.NewDecoder(netflow.Config{})
	buf := make([]byte, 65536)
	records := 0
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range e.Stats.Messages {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > 600 {
			t.Errorf("message of %d bytes, over 600", n)
		}
		d.Decode(netip.MustParseAddr("127.0.0.1"), buf[:n], t0, func(r *netflow.Record) {
			records++
			if r.Domain != 9 || !r.Start.Equal(t0) || !r.End.Equal(t0.Add(time.Second)) {
				t.Fatalf("record %+v", r)
			}
		})
	}
	want := uint64(e.Stats.Messages+2) / 3 * 2 // two templates every third message
	if records != 2*flows || d.Stats.SequenceErrors != 0 || d.Stats.TemplateErrors != 0 || d.Stats.Templates != want {
		t.Errorf("%d records from %d messages; decoder %+v, want %d templates", records, e.Stats.Messages, d.Stats, want)
	}
}
