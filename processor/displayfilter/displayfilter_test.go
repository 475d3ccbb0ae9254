package displayfilter

import (
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/pcapfile"
	"capfleet.dev/capfleet/processor/decode"
)

// frame is a decoded packet of a test capture with its frame number.
type frame struct {
	n int
	p decode.Packet
}

// decodeFile decodes every packet of a capture under the repository's testdata.
func decodeFile(t testing.TB, name string, headersOnly bool) []frame {
	t.Helper()
	r, err := pcapfile.Open(filepath.Join(testenv.Root(t), "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := decode.NewDecoder()
	dec.HeadersOnly = headersOnly
	var out []frame
	for n := 1; ; n++ {
		pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{n: n})
		dec.Decode(pkt.Data, pkt.LinkType, pkt.Timestamp, pkt.Length, &out[len(out)-1].p)
	}
}

func matching(f *Filter, frames []frame) []int {
	var out []int
	for i := range frames {
		if f.Match(&frames[i].p, frames[i].n) {
			out = append(out, frames[i].n)
		}
	}
	return out
}

func mustCompile(t testing.TB, s string) *Filter {
	t.Helper()
	f, err := Compile(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return f
}

// TestErrorsNamePlace checks the parts of an error a user reads: class, column and caret.
func TestErrorsNamePlace(t *testing.T) {
	for _, c := range []struct {
		filter string
		class  Class
		pos    int
	}{
		{"tcp.port == 65536", ClassValue, 12},
		{"ip.addr == 10.0.0.0/33", ClassValue, 11},
		{"ip.src == 1.2.3.4 && bogus", ClassUnknownField, 21},
		{"tcp.port == 80 &&", ClassEnd, -1},
		{"ip.ttl ~ \"6\"", ClassType, 0},
		{"dns.qry.name matches \"(?<=a)b\"", ClassUnsupported, 21},
		{"dns.qry.name matches \"(a)\\\\1\"", ClassUnsupported, 21},
		{"eth.src[0:3] == 00:11:22", ClassUnsupported, 7},
		{"len(ip.src) == 4", ClassUnsupported, 0},
	} {
		_, err := Compile(c.filter)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: got %v, want an *Error", c.filter, err)
			continue
		}
		if e.Class != c.class || e.Pos != c.pos {
			t.Errorf("%q: %s at %d (%s), want %s at %d", c.filter, e.Class, e.Pos, e.Msg, c.class, c.pos)
		}
		if c.pos >= 0 && !strings.Contains(e.Error(), "column ") {
			t.Errorf("%q: message %q names no column", c.filter, e.Error())
		}
		if c.pos >= 0 && !strings.Contains(e.Caret(), "\n    "+strings.Repeat(" ", c.pos)+"^") {
			t.Errorf("%q: caret misplaced:\n%s", c.filter, e.Caret())
		}
	}
	_, err := Compile(`dns.qry.name matches "(?<=a)b"`)
	if err == nil || !strings.Contains(err.Error(), "lookahead and lookbehind") || !strings.Contains(err.Error(), "RE2") {
		t.Errorf("a lookbehind is refused without saying why: %v", err)
	}
}

// TestHeadersOnlyKeepsHeaderFilters checks that a filter needing no payload keeps the same
// frames when the decoder stops at the transport header, and that one that needs the payload
// says so.
func TestHeadersOnlyKeepsHeaderFilters(t *testing.T) {
	full := append(decodeFile(t, "dns.pcap", false), decodeFile(t, "http.pcap", false)...)
	heads := append(decodeFile(t, "dns.pcap", true), decodeFile(t, "http.pcap", true)...)
	for _, s := range []string{"udp.port == 53 && ip.ttl > 50", "tcp.flags.syn == 1", "ip.addr in {10.0.0.0/8, 95.211.92.0/24}", "!tcp"} {
		f := mustCompile(t, s)
		if f.NeedsPayload() {
			t.Errorf("%q reads header fields only, yet NeedsPayload", s)
		}
		if a, b := matching(f, full), matching(f, heads); !slices.Equal(a, b) || len(a) == 0 {
			t.Errorf("%q: %v with the payload decoded, %v without (want equal and not empty)", s, a, b)
		}
	}
	f := mustCompile(t, `dns.qry.name contains "ru"`)
	if !f.NeedsPayload() {
		t.Error("a dns.qry.name filter does not ask for the payload")
	}
	if len(matching(f, full)) == 0 || len(matching(f, heads)) != 0 {
		t.Error("the DNS name was read though the decoder was told to stop at the headers, or not read at all")
	}
}

// TestMatchDoesNotAllocate is the benchmark's claim as a test, so CI holds it.
func TestMatchDoesNotAllocate(t *testing.T) {
	frames := append(decodeFile(t, "dns.pcap", false), decodeFile(t, "http.pcap", false)...)
	for _, s := range benchFilters {
		f := mustCompile(t, s)
		if a := testing.AllocsPerRun(50, func() {
			for i := range frames {
				f.Match(&frames[i].p, frames[i].n)
			}
		}); a != 0 {
			t.Errorf("%q: %.1f allocations per pass over %d packets, want 0", s, a, len(frames))
		}
	}
}

var benchFilters = []string{
	"tcp.flags.syn == 1 && tcp.flags.ack == 0",
	"ip.addr == 10.0.0.0/8 && (tcp.port in {80, 443, 8000..8080} || udp.port == 53)",
	"ip.addr != 10.1.1.1 && !(ip.src#1 == 95.211.92.14) && frame.len > 60",
	`dns.qry.name matches "\\.(ru|com)$" || dns.qry.name contains "google"`,
	"eth.addr == ff:ff:ff:ff:ff:ff || vlan.id in {1..100} || udp.srcport > udp.dstport",
	"ipv6.addr == fe80::/10 || frame.time_epoch > 1500000000.5",
}

// BenchmarkMatch is the cost of evaluating one compiled filter on one decoded packet.
func BenchmarkMatch(b *testing.B) {
	frames := append(decodeFile(b, "dns.pcap", false), decodeFile(b, "http.pcap", false)...)
	for _, s := range benchFilters {
		f := mustCompile(b, s)
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				fr := &frames[i%len(frames)]
				f.Match(&fr.p, fr.n)
				i++
			}
		})
	}
}

// FuzzCompile: any text either compiles or is refused with an *Error whose place lies within the
// text; a filter that compiles evaluates on every packet of the test captures (and terminates).
func FuzzCompile(f *testing.F) {
	for _, path := range []string{"testdata/errors.txt", "../../pcaptool/decodecmd/testdata/displayfilters.txt"} {
		for _, l := range readLines(f, path) {
			f.Add(l)
		}
	}
	frames := append(decodeFile(f, "dns.pcap", false), decodeFile(f, "http.pcap", false)...)
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Compile(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: error of type %T: %v", s, err, err)
			}
			if e.Pos > len(s) || e.End < e.Pos || (e.Pos < 0 && e.End != -1) {
				t.Fatalf("%q: error place %d..%d outside the text", s, e.Pos, e.End)
			}
			_ = e.Caret()
			return
		}
		for i := range frames {
			flt.Match(&frames[i].p, frames[i].n)
		}
	})
}

// BenchmarkMatchMix is one evaluation per op, cycling through benchFilters and the packets of
// two captures: the per-packet cost make bench reports beside tshark -Y.
func BenchmarkMatchMix(b *testing.B) {
	frames := append(decodeFile(b, "dns.pcap", false), decodeFile(b, "http.pcap", false)...)
	filters := make([]*Filter, len(benchFilters))
	for i, s := range benchFilters {
		filters[i] = mustCompile(b, s)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		fr := &frames[i%len(frames)]
		filters[i%len(filters)].Match(&fr.p, fr.n)
		i++
	}
}

type rec struct {
	a, b string
	n    uint64
}

// TestSchemaRecords covers what flow filters rely on beyond packets: text fields compared with
// each other, exponent values where the schema allows them, and aliases.
func TestSchemaRecords(t *testing.T) {
	s := NewSchema[rec]()
	s.Floats = true
	s.Text("a", func(r *rec) string { return r.a })
	s.Text("b", func(r *rec) string { return r.b })
	s.Uint("n", func(r *rec) (uint64, bool) { return r.n, true })
	s.Alias("x.n", "n")
	r := rec{a: "ShADadfF", b: "Dad", n: 2_000_000}
	for filter, want := range map[string]bool{
		"a contains b": true, "b contains a": false, "a > b": true, "a == b": false,
		"n > 1e6": true, "x.n >= 2.5e6": false, `a matches "^s"`: true, "!(a)": false,
	} {
		f, err := s.Compile(filter)
		if err != nil {
			t.Fatalf("%q: %v", filter, err)
		}
		if got := f.Match(&r); got != want {
			t.Errorf("%q: %v, want %v", filter, got, want)
		}
	}
	if _, err := s.Compile("n > 1.5"); err == nil {
		t.Error("a fraction on an integer field compiles")
	}
	strict := NewSchema[rec]()
	strict.Uint("n", func(r *rec) (uint64, bool) { return r.n, true })
	if _, err := strict.Compile("n > 1e6"); err == nil {
		t.Error("1e6 compiles without Floats, as tshark would refuse it")
	}
}
