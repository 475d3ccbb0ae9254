package packetrecord

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

func TestEncodeKeyIsMetronMicrosBigEndian(t *testing.T) {
	ts := time.Date(2026, 11, 25, 13, 30, 1, 123456789, time.UTC)
	r := Encode(Meta{Timestamp: ts, LinkType: linktype.Ethernet, OrigLen: 3}, []byte{1, 2, 3})
	// 2026-11-25T13:30:01.123456Z is 1795613401123456 µs after the epoch; the bytes
	// are what Python prints for struct.pack(">Q", 1795613401123456), pycapa's pack_ts.
	want := []byte{0x00, 0x06, 0x61, 0x19, 0xd2, 0xed, 0x8a, 0x80}
	if us := ts.UnixMicro(); us != 1795613401123456 {
		t.Fatalf("fixture: UnixMicro = %d", us)
	}
	if !bytes.Equal(r.Key, want) {
		t.Fatalf("key = % x, want % x", r.Key, want)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	ts := time.Unix(1700000000, 987654321)
	frame := []byte("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00payload")
	m := Meta{Timestamp: ts, Node: "node-a", Interface: "eth1", LinkType: linktype.LinuxSLL, OrigLen: 1500}
	r := Encode(m, frame)
	frame[0] = 0xff // the record must own its copy: capture rings reuse their slots
	got, value, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Timestamp.Equal(ts) || got.Node != m.Node || got.Interface != m.Interface ||
		got.LinkType != m.LinkType || got.OrigLen != m.OrigLen {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if value[0] != 0x00 || !bytes.Equal(value[1:], frame[1:]) {
		t.Fatalf("value % x", value)
	}
	headers := map[string]string{}
	for _, h := range r.Headers {
		headers[h.Key] = string(h.Value)
	}
	for k, v := range map[string]string{"ts_ns": "1700000000987654321", "node": "node-a", "iface": "eth1",
		"linktype": "113", "origlen": "1500"} {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, headers[k], v)
		}
	}
}

// Linux cooked v2 (276), what `tcpdump -i any` writes, crosses Kafka whole.
func TestEncodeDecodeSLL2(t *testing.T) {
	frame := sll2Frame(ipv4TCP(10, 20, 1234, 80))
	m := Meta{Timestamp: time.Unix(1700000000, 0), Node: "node-a", Interface: "any", LinkType: linktype.LinuxSLL2, OrigLen: len(frame)}
	r := Encode(m, frame)
	got, value, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.LinkType != linktype.LinuxSLL2 || !bytes.Equal(value, frame) {
		t.Fatalf("decoded link type %d, frame % x; want 276, % x", got.LinkType, value, frame)
	}
	if h := r.Headers[3]; h.Key != HeaderLinkType || string(h.Value) != "276" {
		t.Fatalf("header %s=%q, want linktype=\"276\"", h.Key, h.Value)
	}
}

// The linktype header was decimal text when link types had 8 bits, and still
// is: records written then read the same now.
func TestDecodeRecordsOfThe8BitEncoding(t *testing.T) {
	for v, want := range map[string]linktype.Type{"0": linktype.Null, "1": linktype.Ethernet,
		"101": linktype.Raw, "113": linktype.LinuxSLL, "255": 255} {
		r := Encode(Meta{Timestamp: time.Unix(1, 0), OrigLen: 1}, []byte{1})
		r.Headers[3].Value = []byte(v)
		if m, _, err := Decode(r); err != nil || m.LinkType != want {
			t.Errorf("linktype=%q: got %d, %v; want %d", v, m.LinkType, err, want)
		}
	}
}

func TestEncodeClampsPreEpochKey(t *testing.T) {
	r := Encode(Meta{Timestamp: time.Unix(-5, 0)}, nil)
	if !bytes.Equal(r.Key, make([]byte, 8)) {
		t.Fatalf("key % x, want zeros", r.Key)
	}
	m, _, err := Decode(r)
	if err != nil || m.Timestamp.Unix() != -5 {
		t.Fatalf("ts_ns must keep the exact time: %v %v", m.Timestamp, err)
	}
}

// A record as Metron's pycapa writes it: key and value only.
func TestDecodeMetronRecordWithoutHeaders(t *testing.T) {
	r := &kgo.Record{Key: []byte{0, 0x05, 0xe1, 0x58, 0x2f, 0x4d, 0x3a, 0x40}, Value: make([]byte, 60)}
	m, v, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Timestamp.UnixMicro() != 0x0005e1582f4d3a40 || m.LinkType != linktype.Ethernet || m.OrigLen != 60 || len(v) != 60 {
		t.Fatalf("got %+v", m)
	}
}

func TestDecodeErrorsNameTheFault(t *testing.T) {
	good := Encode(Meta{Timestamp: time.Unix(1, 0), OrigLen: 4}, []byte{1, 2, 3, 4})
	cases := map[string]struct {
		mutate func(r *kgo.Record)
		want   string
	}{
		"short key":     {func(r *kgo.Record) { r.Key = r.Key[:4] }, "key is 4 bytes, want 8"},
		"ts_ns garbage": {func(r *kgo.Record) { r.Headers[0].Value = []byte("12x") }, `header ts_ns="12x"`},
		"linktype beyond 32 bits": {func(r *kgo.Record) { r.Headers[3].Value = []byte("4294967296") },
			`header linktype="4294967296": not a 32-bit decimal link type`},
		"linktype negative": {func(r *kgo.Record) { r.Headers[3].Value = []byte("-1") }, `header linktype="-1"`},
		"linktype empty":    {func(r *kgo.Record) { r.Headers[3].Value = nil }, `header linktype=""`},
		// Big-endian bytes are no encoding this header ever had: refused, not misread.
		"linktype binary": {func(r *kgo.Record) { r.Headers[3].Value = []byte{0x01, 0x14} }, `header linktype="\x01\x14"`},
		"origlen short":   {func(r *kgo.Record) { r.Headers[4].Value = []byte("2") }, "shorter than the 4-byte frame"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := *good
			r.Key = append([]byte(nil), good.Key...)
			r.Headers = append([]kgo.RecordHeader(nil), good.Headers...)
			r.Topic, r.Partition, r.Offset = "pk", 3, 42
			c.mutate(&r)
			_, _, err := Decode(&r)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "pk/3@42") {
				t.Fatalf("error %v, want it to contain %q and the record position", err, c.want)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	frame := make([]byte, 1514)
	m := Meta{Timestamp: time.Now(), Node: "node-a", Interface: "eth0", LinkType: linktype.Ethernet, OrigLen: 1514}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		Encode(m, frame)
	}
}

// The fast decimal path agrees with strconv on every input: the same value, or both an error.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "1", "-1", "1733490000123456789", "9223372036854775807", "9223372036854775808",
		"99999999999999999999", "2147483647", "2147483648", "+5", "0x10", "1_000", "", " 7", "007"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, bits := range []int{32, 64} {
			got, gotErr := parseInt(v, bits)
			want, wantErr := strconv.ParseInt(string(v), 10, bits)
			if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && got != want) {
				t.Fatalf("parseInt(%q, %d) = %d, %v; strconv: %d, %v", v, bits, got, gotErr, want, wantErr)
			}
		}
		got, gotErr := parseLinkType(v)
		want, wantErr := strconv.ParseUint(string(v), 10, 32)
		if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && uint64(got) != want) {
			t.Fatalf("parseLinkType(%q) = %d, %v; strconv: %d, %v", v, got, gotErr, want, wantErr)
		}
	})
}
