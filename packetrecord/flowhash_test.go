package packetrecord

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/twmb/franz-go/pkg/kgo"
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
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

type frame struct {
	data []byte
	lt   layers.LinkType
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
	var lt layers.LinkType
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
		out = append(out, frame{data, lt})
	}
}

// flowOf names a packet's flow as gopacket's own decoders see it, an
// implementation independent of FlowHash: the endpoints in a canonical order,
// whether this packet went the "reverse" way, and ok=false for packets that
// are no plain (unfragmented) TCP/UDP/SCTP over IP.
func flowOf(f frame) (key string, reverse, ok bool) {
	p := gopacket.NewPacket(f.data, f.lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
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
	if FlowHash(arp(1, 2), layers.LinkTypeEthernet) != FlowHash(arp(2, 1), layers.LinkTypeEthernet) {
		t.Error("ARP between two MACs is not symmetric")
	}
	if FlowHash(arp(1, 2), layers.LinkTypeEthernet) == FlowHash(arp(1, 3), layers.LinkTypeEthernet) {
		t.Error("different MAC pairs collide")
	}
	for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeRaw,
		layers.LinkTypeNull, layers.LinkTypeIPv4, layers.LinkTypeIPv6, layers.LinkTypeIEEE802_11} {
		for n := 0; n < 80; n++ {
			a := FlowHash(bytes.Repeat([]byte{0x45}, n), lt)
			if b := FlowHash(bytes.Repeat([]byte{0x45}, n), lt); a != b {
				t.Fatalf("linktype %d, %d bytes: unstable", lt, n)
			}
		}
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
	f.Add([]byte("\x45\x00\x00\x28\x00\x00\x40\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x50\x01\xbb"), uint8(layers.LinkTypeRaw))
	f.Add(bytes.Repeat([]byte{0x81, 0x00}, 30), uint8(layers.LinkTypeEthernet))
	f.Fuzz(func(t *testing.T, data []byte, lt uint8) {
		if FlowHash(data, layers.LinkType(lt)) != FlowHash(data, layers.LinkType(lt)) {
			t.Fatal("unstable")
		}
	})
}
