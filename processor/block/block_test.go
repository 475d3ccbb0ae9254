package block

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/pcapfile"
)

// readCapture returns the packets of a capture file as block packets, offsets from 100 on.
func readCapture(t testing.TB, path string) []Packet {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Packet
	for off := int64(100); ; off++ {
		p, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Packet{Offset: off, Timestamp: p.Timestamp.UnixNano(), OrigLen: p.Length,
			LinkType: uint32(p.LinkType), Node: "node-a", Interface: "eth0", Data: bytes.Clone(p.Data)})
	}
}

// build cuts pkts into blocks the way the pipeline does and returns them compressed.
func build(pkts []Packet, lim Limits) []storedBlock {
	b := NewBuilder(lim)
	var out []storedBlock
	seal := func() {
		s := b.Seal()
		out = append(out, storedBlock{meta: s.Meta, index: s.Index, data: Compress(nil, s.Body)})
	}
	for i := range pkts {
		if b.Full(&pkts[i]) {
			seal()
		}
		b.Add(&pkts[i])
	}
	if b.Len() > 0 {
		seal()
	}
	return out
}

type storedBlock struct {
	meta  Meta
	index Bloom
	data  []byte
}

func unpack(t testing.TB, blocks []storedBlock) []Packet {
	t.Helper()
	var out []Packet
	for _, sb := range blocks {
		body, err := Decompress(nil, sb.data, CodecZstd)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) != sb.meta.RawBytes {
			t.Fatalf("block at %d: %d bytes decompressed, meta says %d", sb.meta.FirstOffset, len(body), sb.meta.RawBytes)
		}
		n := 0
		err = Each(body, sb.meta.FirstOffset, func(p *Packet) error {
			if p.Timestamp < sb.meta.MinTime || p.Timestamp > sb.meta.MaxTime || p.Offset > sb.meta.LastOffset {
				t.Errorf("packet at offset %d outside its block's range %+v", p.Offset, sb.meta)
			}
			q := *p
			q.Data = bytes.Clone(p.Data)
			out = append(out, q)
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != sb.meta.Packets {
			t.Fatalf("block at %d: %d packets, meta says %d", sb.meta.FirstOffset, n, sb.meta.Packets)
		}
	}
	return out
}

func corpus(t testing.TB) []string {
	pcaps := testenv.Pcaps(t)
	return []string{
		filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"),
		filepath.Join(pcaps, "zeek", "erspan.pcap"),
		filepath.Join(pcaps, "zeek", "irc-dcc-send.pcapng"),
		filepath.Join(pcaps, "zeek", "echo-connections.pcap"),
	}
}

func TestRoundTripRealCaptures(t *testing.T) {
	for _, path := range corpus(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			pkts := readCapture(t, path)
			if len(pkts) == 0 {
				t.Fatal("no packets")
			}
			lim := Limits{MaxBytes: 32 << 10, MaxPackets: 100, MaxBuckets: 3, Bucket: 500 * time.Millisecond}
			blocks := build(pkts, lim)
			got := unpack(t, blocks)
			if len(got) != len(pkts) {
				t.Fatalf("%d packets back, %d in", len(got), len(pkts))
			}
			for i := range pkts {
				w, g := pkts[i], got[i]
				if g.Offset != w.Offset || g.Timestamp != w.Timestamp || g.OrigLen != w.OrigLen ||
					g.LinkType != w.LinkType || g.Node != w.Node || g.Interface != w.Interface || !bytes.Equal(g.Data, w.Data) {
					t.Fatalf("packet %d differs: got %+v want %+v", i, g, w)
				}
			}
			for _, b := range blocks {
				if b.meta.Packets > lim.MaxPackets || (b.meta.Packets > 1 && b.meta.RawBytes > lim.MaxBytes+footerSize+64) ||
					len(b.meta.Buckets) > lim.MaxBuckets || len(b.meta.Buckets) == 0 {
					t.Errorf("block %+v breaks the limits %+v", b.meta, lim)
				}
			}
			t.Logf("%d packets in %d blocks", len(pkts), len(blocks))
		})
	}
}

// A consumer that restarts at any block's first offset must cut the same blocks from there on: the
// rows it writes then replace the ones written before the restart instead of overlapping them.
func TestCutsRepeatFromAnyBlockStart(t *testing.T) {
	pkts := readCapture(t, corpus(t)[0])
	lim := Limits{MaxBytes: 8 << 10, MaxPackets: 37, MaxBuckets: 2, Bucket: 200 * time.Millisecond}
	all := build(pkts, lim)
	if len(all) < 5 {
		t.Fatalf("only %d blocks: the test needs cuts", len(all))
	}
	for i, b := range all {
		start := int(b.meta.FirstOffset - pkts[0].Offset)
		again := build(pkts[start:], lim)
		if len(again) != len(all)-i {
			t.Fatalf("restart at block %d: %d blocks, want %d", i, len(again), len(all)-i)
		}
		for j := range again {
			if !reflect.DeepEqual(again[j].meta, all[i+j].meta) || !bytes.Equal(again[j].data, all[i+j].data) {
				t.Fatalf("restart at block %d: block %d differs", i, j)
			}
		}
	}
}

func TestSourcesKeepNodeInterfaceAndLinkType(t *testing.T) {
	in := []Packet{
		{Offset: 5, Timestamp: 1000, OrigLen: 60, LinkType: 1, Node: "a", Interface: "eth0", Data: []byte{1, 2, 3}},
		{Offset: 7, Timestamp: 900, OrigLen: 70, LinkType: 276, Node: "b", Interface: "any", Data: []byte{4}},
		{Offset: 8, Timestamp: 1100, OrigLen: 0, LinkType: 1, Node: "a", Interface: "eth0", Data: nil},
	}
	got := unpack(t, build(in, Limits{}))
	for i := range in {
		if got[i].Offset != in[i].Offset || got[i].Timestamp != in[i].Timestamp || got[i].LinkType != in[i].LinkType ||
			got[i].Node != in[i].Node || got[i].Interface != in[i].Interface || !bytes.Equal(got[i].Data, in[i].Data) {
			t.Errorf("packet %d: got %+v want %+v", i, got[i], in[i])
		}
	}
}

func TestBloom(t *testing.T) {
	addrs := map[netip.Addr]struct{}{}
	for i := range 200 {
		addrs[netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})] = struct{}{}
	}
	addrs[netip.MustParseAddr("2001:db8::1")] = struct{}{}
	f := NewBloom(addrs)
	for a := range addrs {
		if !f.MayContain(a) {
			t.Fatalf("%s indexed but not found", a)
		}
	}
	if !f.MayContain(netip.MustParseAddr("::ffff:10.0.0.7")) {
		t.Error("an IPv4-mapped address must find its IPv4 form")
	}
	fp := 0
	for i := range 10000 {
		if f.MayContain(netip.AddrFrom4([4]byte{192, 168, byte(i / 256), byte(i)})) {
			fp++
		}
	}
	if fp > 300 {
		t.Errorf("%d false positives in 10000, want about 1%%", fp)
	}
	if !Bloom(nil).MayContain(netip.MustParseAddr("1.2.3.4")) || !Bloom([]byte{7, 1, 2}).MayContain(netip.MustParseAddr("1.2.3.4")) {
		t.Error("a missing or malformed index must read every block")
	}
}

func TestCorruptBodiesAreErrors(t *testing.T) {
	blocks := build(readCapture(t, corpus(t)[0])[:50], Limits{})
	body, err := Decompress(nil, blocks[0].data, CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 3, 11, len(body) / 2, len(body) - 1} {
		if err := Each(body[:cut], 0, func(*Packet) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("body cut to %d bytes: err %v, want ErrCorrupt", cut, err)
		}
	}
	flipped := bytes.Clone(blocks[0].data)
	flipped[len(flipped)/2] ^= 0xff
	if _, err := Decompress(nil, flipped, CodecZstd); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped compressed byte: err %v, want ErrCorrupt (zstd checksum)", err)
	}
	if _, err := Decompress(nil, blocks[0].data, Codec(9)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown codec: err %v", err)
	}
}

// A block lists its fine slices only while there are few of them: that choice decides whether the
// store indexes it by minute or by hour, so it must follow the packets, not the order they came in.
func TestFineSlicesOnlyWhileFew(t *testing.T) {
	lim := Limits{MaxFine: 2, FineBucket: time.Minute, Bucket: time.Hour}
	at := func(ts ...time.Duration) []Packet {
		var out []Packet
		for i, d := range ts {
			out = append(out, Packet{Offset: int64(i), Timestamp: int64(d), Data: []byte{byte(i)}})
		}
		return out
	}
	for _, c := range []struct {
		name string
		pkts []Packet
		want []int64
	}{
		{"one minute", at(10*time.Second, 50*time.Second), []int64{0}},
		{"two minutes, back and forth", at(61*time.Second, 5*time.Second, 62*time.Second), []int64{0, int64(time.Minute)}},
		{"three minutes", at(5*time.Second, 65*time.Second, 125*time.Second), nil},
		{"three minutes, the third coming back", at(5*time.Second, 65*time.Second, 125*time.Second, 6*time.Second), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			blocks := build(c.pkts, lim)
			if len(blocks) != 1 {
				t.Fatalf("%d blocks, want 1", len(blocks))
			}
			if got := blocks[0].meta.Fine; !reflect.DeepEqual(got, c.want) {
				t.Errorf("Fine = %v, want %v", got, c.want)
			}
			if got := blocks[0].meta.Buckets; !reflect.DeepEqual(got, []int64{0}) {
				t.Errorf("Buckets = %v, want [0]", got)
			}
		})
	}
}
