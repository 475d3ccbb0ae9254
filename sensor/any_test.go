package sensor

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/processor/decode"
)

// ifindex reads an interface's index inside the test's namespace.
func (n vethNS) ifindex(t *testing.T, dev string) uint32 {
	t.Helper()
	i, err := strconv.Atoi(strings.TrimSpace(n.run(t, "cat", "/sys/class/net/"+dev+"/ifindex")))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(i)
}

// writeSLL2Pcap writes frames as a pcap of link type 276, which pcapgo's
// 8-bit link type cannot name.
func writeSLL2Pcap(t *testing.T, frames [][]byte) string {
	t.Helper()
	var b bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(linktype.LinuxSLL2))
	b.Write(hdr)
	for i, f := range frames {
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
		b.Write(rec)
		b.Write(f)
	}
	p := filepath.Join(t.TempDir(), "any.pcap")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A sensor on "any" captures every interface of its namespace as tcpdump -i any does: each packet replayed
// out of one veth end is seen leaving it and arriving at the other, framed as Linux cooked v2 (link type 276)
// with the interface, the packet type and the source address; tshark and the pipeline's decoder read it.
func TestCaptureAny(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := filepath.Join("..", "testdata", "http.pcap")
	want, _ := readPcap(t, file)
	tx, rx := n.ifindex(t, n.Tx), n.ifindex(t, n.Rx)

	cfg := e2eConfig(n, kafka, topic)
	cfg.Interfaces = []string{AnyInterface}
	s := startSensor(t, cfg)
	sent := n.replay(t, file, 1000)
	waitFor(t, "every packet captured twice (out of one end, into the other) and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(2*sent) && c.Buffered() == 0
	})
	time.Sleep(500 * time.Millisecond) // a packet too many must show too
	s.stop(t)
	if c := s.Counters(); c.PacketsCaptured != uint64(2*sent) || c.PacketsPublished != uint64(2*sent) {
		t.Fatalf("captured %d, published %d; %d packets sent, each seen on two interfaces", c.PacketsCaptured, c.PacketsPublished, sent)
	}

	recs := consumeAll(t, kafka, topic)
	payloads := map[uint32][][]byte{}
	var cooked [][]byte
	for _, r := range recs {
		m, frame, err := packetrecord.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if m.LinkType != linktype.LinuxSLL2 || m.Interface != AnyInterface || m.OrigLen != len(frame) || len(frame) < sll2HeaderLen {
			t.Fatalf("record %d@%d: meta %+v for a %d-byte frame", r.Partition, r.Offset, m, len(frame))
		}
		if want := int32(packetrecord.FlowHash(frame, m.LinkType) % e2ePartitions); r.Partition != want {
			t.Errorf("record %d@%d: in partition %d, its flow hashes to %d", r.Partition, r.Offset, r.Partition, want)
		}
		proto, ifi, hatype := binary.BigEndian.Uint16(frame[0:]), binary.BigEndian.Uint32(frame[4:]), binary.BigEndian.Uint16(frame[8:])
		pktType, halen := frame[10], frame[11]
		if proto != 0x0800 || hatype != unix.ARPHRD_ETHER || halen != 6 || (ifi == tx) != (pktType == unix.PACKET_OUTGOING) {
			t.Fatalf("cooked header % x: protocol %#x interface %d hatype %d packet type %d", frame[:sll2HeaderLen], proto, ifi, hatype, pktType)
		}
		payloads[ifi] = append(payloads[ifi], frame[sll2HeaderLen:])
		cooked = append(cooked, frame)
	}
	// Each interface saw exactly the file's packets, from their network header on.
	var ipOnly [][]byte
	for _, f := range want {
		ipOnly = append(ipOnly, f[14:])
	}
	for _, ifi := range []uint32{tx, rx} {
		if d := diffMultisets(multiset(ipOnly), multiset(payloads[ifi])); d != "" {
			t.Errorf("interface %d vs %s: %s", ifi, file, d)
		}
	}

	t.Run("tshark reads the frames as Linux cooked v2", func(t *testing.T) {
		if _, err := exec.LookPath("tshark"); err != nil {
			failOrSkip(t, "tshark is missing: run hack/deps.sh")
		}
		out, err := exec.Command("tshark", "-r", writeSLL2Pcap(t, cooked), "-T", "fields", "-e", "frame.protocols", "-e", "ip.src").Output()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(cooked) {
			t.Fatalf("tshark read %d frames, want %d", len(lines), len(cooked))
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "sll:ethertype:ip:tcp") || !strings.Contains(l, "10.1.1.") {
				t.Fatalf("tshark: %q", l)
			}
		}
	})
	t.Run("the pipeline's decoder reads them", func(t *testing.T) {
		d := decode.NewDecoder()
		for _, f := range cooked {
			var p decode.Packet
			if r := d.Decode(f, linktype.LinuxSLL2, time.Now(), len(f), &p); r != decode.OK || p.NIP != 1 || !strings.HasPrefix(p.IP[0].Src.String(), "10.1.1.") {
				t.Fatalf("decode: reason %v, %d IP headers, src %v", r, p.NIP, p.IP[0].Src)
			}
		}
	})
}

// On "any" the filter runs in userspace on the cooked frame, compiled for it: it keeps what tcpdump would.
func TestCaptureAnyFilter(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
	file := filepath.Join("..", "testdata", "http.pcap")

	cfg := e2eConfig(n, kafka, topic)
	cfg.Interfaces = []string{AnyInterface}
	cfg.Filter = "tcp[tcpflags] & tcp-syn != 0"
	s := startSensor(t, cfg)
	n.replay(t, file, 1000)
	wantSyn := len(tcpdumpSelect(t, file, cfg.Filter))
	waitFor(t, "the SYN packets captured on both ends", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(2*wantSyn) && c.Buffered() == 0
	})
	time.Sleep(500 * time.Millisecond)
	s.stop(t)
	if got := len(consumeAll(t, kafka, topic)); got != 2*wantSyn {
		t.Fatalf("%d records; tcpdump selects %d packets of the file, each seen on two interfaces", got, wantSyn)
	}
}
