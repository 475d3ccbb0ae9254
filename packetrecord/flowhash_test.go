package packetrecord

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/linktype"
)

// sharedPcaps is ../shared/pcaps next to the checkout (CAPFLEET_PCAPS overrides).
func sharedPcaps(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CAPFLEET_PCAPS")
	if dir == "" {
		wd, _ := os.Getwd()
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(filepath.Dir(d), "shared", "pcaps")
				break
			}
		}
	}
	if _, err := os.Stat(dir); err != nil {
		msg := fmt.Sprintf("real captures not found at %q (set CAPFLEET_PCAPS): %v", dir, err)
		testenv.Missing(t, "%s", msg)
	}
	return dir
}

type frame struct {
	data []byte
	lt   linktype.Type
}

func readCapture(t testing.TB, path string) []frame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	var lt layers.LinkType // the captures read here all have link types below 256
	if strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		src, lt = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		src, lt = r, r.LinkType()
	}
	var out []frame
	for {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", path, len(out)+1, err)
		}
		out = append(out, frame{data, linktype.Type(lt)})
	}
}

// flowOf names a packet's flow as gopacket's own decoders see it, an
// implementation independent of FlowHash: the endpoints in a canonical order,
// whether this packet went the "reverse" way, and ok=false for packets that
// are no plain (unfragmented) TCP/UDP/SCTP over IP.
func flowOf(f frame) (key string, reverse, ok bool) {
	p := gopacket.NewPacket(f.data, layers.LinkType(f.lt), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	if ip4, is := p.NetworkLayer().(*layers.IPv4); is && (ip4.Flags&layers.IPv4MoreFragments != 0 || ip4.FragOffset != 0) {
		return "", false, false
	}
	if p.Layer(layers.LayerTypeIPv6Fragment) != nil || p.NetworkLayer() == nil || p.TransportLayer() == nil {
		return "", false, false
	}
	net, tr := p.NetworkLayer().NetworkFlow(), p.TransportLayer().TransportFlow()
	src, dst := net.Src().Raw(), net.Dst().Raw()
	sp, dp := tr.Src().Raw(), tr.Dst().Raw()
	c := bytes.Compare(src, dst)
	reverse = c > 0 || (c == 0 && bytes.Compare(sp, dp) > 0)
	if reverse {
		src, dst, sp, dp = dst, src, dp, sp
	}
	return fmt.Sprintf("%v %x:%x %x:%x", p.TransportLayer().LayerType(), src, sp, dst, dp), reverse, true
}

// Every packet of a flow, whichever way it goes, gets the flow's hash; flows
// seen in both directions exist in each file (else the test proves nothing);
// distinct flows get distinct hashes.
func TestFlowHashSymmetricOnRealFlows(t *testing.T) {
	dir := sharedPcaps(t)
	for _, name := range []string{
		"ndpi/1kxun.pcap",                 // Ethernet, IPv4 and IPv6, TCP and UDP
		"zeek/http-vlan-0.pcap",           // 802.1Q
		"zeek/http-qinq-0.pcap",           // 802.1ad QinQ
		"zeek/vlan-qinqinq.pcap",          // three tags
		"ndpi/KakaoTalk_chat.pcap",        // Linux cooked (SLL)
		"ndpi/psiphon3.pcap",              // raw IP
		"zeek/communityid/sctp.pcap",      // SCTP
		"ndpi/tls_heur__vmess-tcp.pcapng", // pcapng, SLL, IPv6
	} {
		t.Run(name, func(t *testing.T) {
			frames := readCapture(t, filepath.Join(dir, name))
			hashOf := map[string]uint32{}
			dirs := map[string][2]bool{}
			for i, f := range frames {
				key, rev, ok := flowOf(f)
				if !ok {
					continue
				}
				h := FlowHash(f.data, f.lt)
				if prev, seen := hashOf[key]; seen && prev != h {
					t.Fatalf("packet %d of flow %s hashes %08x, earlier packets %08x", i+1, key, h, prev)
				}
				hashOf[key] = h
				d := dirs[key]
				if rev {
					d[1] = true
				} else {
					d[0] = true
				}
				dirs[key] = d
			}
			both := 0
			for _, d := range dirs {
				if d[0] && d[1] {
					both++
				}
			}
			if both == 0 {
				t.Fatalf("no flow seen in both directions among %d flows in %d packets", len(hashOf), len(frames))
			}
			distinct := map[uint32]bool{}
			for _, h := range hashOf {
				distinct[h] = true
			}
			if len(distinct) < len(hashOf) {
				t.Errorf("%d flows share %d hashes", len(hashOf), len(distinct))
			}
			t.Logf("%d packets, %d flows, %d seen both ways", len(frames), len(hashOf), both)
		})
	}
}

// The record partitioner agrees with the hash, for both directions of a flow.
func TestPartitionFollowsFlowHash(t *testing.T) {
	frames := readCapture(t, filepath.Join(sharedPcaps(t), "ndpi/KakaoTalk_chat.pcap"))
	part := Partitioner().ForTopic("packets")
	if !part.RequiresConsistency(&kgo.Record{}) {
		t.Fatal("flow partitioning must be consistent")
	}
	for i, f := range frames {
		r := Encode(Meta{LinkType: f.lt, OrigLen: len(f.data)}, f.data)
		for _, n := range []int{1, 3, 12} {
			if got, want := part.Partition(r, n), int(FlowHash(f.data, f.lt)%uint32(n)); got != want {
				t.Fatalf("packet %d, %d partitions: got %d, want %d", i+1, n, got, want)
			}
		}
	}
}

// Frames that are not IP still land somewhere stable: ARP between two hosts
// lands together either way, and truncated or unknown frames do not panic.
func TestFlowHashNonIP(t *testing.T) {
	arp := func(a, b byte) []byte {
		f := make([]byte, 42)
		copy(f[0:6], []byte{0, 0, 0, 0, 0, a})
		copy(f[6:12], []byte{0, 0, 0, 0, 0, b})
		f[12], f[13] = 0x08, 0x06
		return f
	}
	if FlowHash(arp(1, 2), linktype.Ethernet) != FlowHash(arp(2, 1), linktype.Ethernet) {
		t.Error("ARP between two MACs is not symmetric")
	}
	if FlowHash(arp(1, 2), linktype.Ethernet) == FlowHash(arp(1, 3), linktype.Ethernet) {
		t.Error("different MAC pairs collide")
	}
	for _, lt := range []linktype.Type{linktype.Ethernet, linktype.LinuxSLL, linktype.LinuxSLL2, linktype.Raw,
		linktype.Null, linktype.IPv4, linktype.IPv6, linktype.IEEE802_11, 1 << 20} {
		for n := 0; n < 80; n++ {
			a := FlowHash(bytes.Repeat([]byte{0x45}, n), lt)
			if b := FlowHash(bytes.Repeat([]byte{0x45}, n), lt); a != b {
				t.Fatalf("linktype %d, %d bytes: unstable", lt, n)
			}
		}
	}
}

// ipv4TCP is a minimal IPv4 TCP packet between 10.0.0.a:sport and 10.0.0.b:dport.
func ipv4TCP(a, b byte, sport, dport uint16) []byte {
	p := make([]byte, 40)
	p[0], p[9] = 0x45, 6
	copy(p[12:16], []byte{10, 0, 0, a})
	copy(p[16:20], []byte{10, 0, 0, b})
	p[20], p[21], p[22], p[23] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
	return p
}

// sll2Frame wraps an IPv4 packet in a Linux cooked v2 header: protocol type,
// reserved, interface index, ARPHRD type, packet type, address length, address.
func sll2Frame(ip []byte) []byte {
	h := []byte{0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
	return append(h, ip...)
}

// An SLL2 frame hashes by its 5-tuple like the same packet in any framing, in
// both directions, and the partitioner reads its 276 from the header.
func TestFlowHashSLL2(t *testing.T) {
	fwd, rev := ipv4TCP(1, 2, 40000, 443), ipv4TCP(2, 1, 443, 40000)
	want := FlowHash(fwd, linktype.Raw)
	if got := FlowHash(sll2Frame(fwd), linktype.LinuxSLL2); got != want {
		t.Errorf("SLL2 hash %08x, raw IP %08x", got, want)
	}
	if got := FlowHash(sll2Frame(rev), linktype.LinuxSLL2); got != want {
		t.Errorf("reverse direction %08x, forward %08x", got, want)
	}
	f := sll2Frame(fwd)
	r := Encode(Meta{LinkType: linktype.LinuxSLL2, OrigLen: len(f)}, f)
	if got := Partition(r, 1000); got != int(want%1000) {
		t.Errorf("partition %d, want %d", got, want%1000)
	}
}

// Link types that fit a byte hash as they did when link types were 8 bits,
// so records of those keep their partitions across the widening.
func TestFlowHashUnknownLinkTypeKeepsItsPartition(t *testing.T) {
	if got, want := FlowHash([]byte{1, 2, 3}, 147), fmix32(hashByte(fnvOffset, 147)); got != want {
		t.Errorf("link type 147: %08x, want %08x", got, want)
	}
	if FlowHash(nil, 147) == FlowHash(nil, 147+256) {
		t.Error("link types 147 and 403 share a hash")
	}
}

func TestFlowHashDoesNotAllocate(t *testing.T) {
	frames := readCapture(t, filepath.Join(sharedPcaps(t), "ndpi/1kxun.pcap"))
	r := Encode(Meta{LinkType: frames[0].lt}, frames[0].data)
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames[:200] {
			FlowHash(f.data, f.lt)
		}
		Partition(r, 12)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func BenchmarkFlowHash(b *testing.B) {
	frames := readCapture(b, filepath.Join(sharedPcaps(b), "ndpi/1kxun.pcap"))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := frames[i%len(frames)]
		FlowHash(f.data, f.lt)
		i++
	}
}

func FuzzFlowHash(f *testing.F) {
	f.Add([]byte("\x45\x00\x00\x28\x00\x00\x40\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x50\x01\xbb"), uint32(linktype.Raw))
	f.Add(bytes.Repeat([]byte{0x81, 0x00}, 30), uint32(linktype.Ethernet))
	f.Add(bytes.Repeat([]byte{0x81, 0x00}, 30), uint32(linktype.LinuxSLL2))
	f.Fuzz(func(t *testing.T, data []byte, lt uint32) {
		if FlowHash(data, linktype.Type(lt)) != FlowHash(data, linktype.Type(lt)) {
			t.Fatal("unstable")
		}
	})
}

// The partitioner's allocation-free parse reads the linktype header as Decode
// does, and hashes what Decode refuses as Ethernet.
func TestLinkTypeOfAgreesWithDecode(t *testing.T) {
	for _, v := range []string{"0", "1", "276", "0276", "4294967295", "4294967296", "99999999999", "", "-1", "1a"} {
		r := Encode(Meta{Timestamp: time.Unix(1, 0), OrigLen: 1}, []byte{1})
		r.Headers[3].Value = []byte(v)
		want := linktype.Ethernet
		if m, _, err := Decode(r); err == nil {
			want = m.LinkType
		}
		if got := linkTypeOf(r); got != want {
			t.Errorf("linktype=%q: partitioner reads %d, Decode %d", v, got, want)
		}
	}
}
