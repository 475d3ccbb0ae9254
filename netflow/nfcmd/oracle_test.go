package nfcmd

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/netflow"
)

// The oracles: Debian's softflowd turns a capture into NetFlow v5, v9 or IPFIX and sends every export
// packet both to Debian's nfcapd and to a socket of the test; nfdump prints what nfcapd stored, and
// capfleet's decoder must read the same flows out of the same datagrams.

func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s not found: run hack/deps.sh (Debian packages softflowd and nfdump)", tool)
		}
	}
}

// oracleCaptures: 30 FTP sessions (IPv4, TCP), and a VPN client's traffic with IPv6, UDP and ICMP.
func oracleCaptures(t testing.TB) []string {
	return []string{
		filepath.Join(testenv.Root(t), "testdata", "ftp-bruteforce.pcap"),
		filepath.Join(testenv.Pcaps(t), "ndpi", "anyconnect-vpn.pcap"),
	}
}

// nfcapd runs Debian's collector on a free loopback port, writing into a directory of its own.
type nfcapd struct {
	cmd  *exec.Cmd
	dir  string
	port string
	log  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startNfcapd(t testing.TB) *nfcapd {
	t.Helper()
	_, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
	n := &nfcapd{dir: t.TempDir(), port: port, log: &syncBuffer{}}
	n.cmd = exec.Command("nfcapd", "-b", "127.0.0.1", "-p", port, "-w", n.dir, "-t", "3600")
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.stop(t) })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(n.log.String(), "Startup"); {
		if time.Now().After(deadline) {
			t.Fatalf("nfcapd did not start: %s", n.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// stop ends nfcapd by its PID; it writes its file and its per-exporter counters as it goes.
func (n *nfcapd) stop(t testing.TB) {
	if n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-done
		t.Errorf("nfcapd did not stop on SIGTERM")
	}
}

var seqErrors = regexp.MustCompile(`Sequence Errors: (\d+)`)

// sequenceErrors is the sum of what nfcapd logged per exporter when it stopped.
func (n *nfcapd) sequenceErrors(t testing.TB) uint64 {
	var sum uint64
	for _, m := range seqErrors.FindAllStringSubmatch(n.log.String(), -1) {
		v, _ := strconv.ParseUint(m[1], 10, 64)
		sum += v
	}
	return sum
}

// oracleFlow is one flow as both sides print it; times in milliseconds since the epoch.
type oracleFlow struct {
	start, end       int64
	src, dst         netip.Addr
	sport, dport     uint16
	proto            uint8
	packets, octects uint64
}

func (f oracleFlow) String() string {
	return fmt.Sprintf("%s:%d > %s:%d p%d %d pkts %d bytes %s..%s", f.src, f.sport, f.dst, f.dport, f.proto, f.packets, f.octects,
		time.UnixMilli(f.start).UTC().Format("01-02T15:04:05.000"), time.UnixMilli(f.end).UTC().Format("01-02T15:04:05.000"))
}

// nfdump reads what nfcapd stored, one flow per line.
func (n *nfcapd) flows(t testing.TB) []oracleFlow {
	t.Helper()
	out, err := exec.Command("nfdump", "-R", n.dir, "-q", "-N", "-6", "-o", "fmt:%ts|%te|%sa|%da|%sp|%dp|%pr|%pkt|%byt").CombinedOutput()
	if err != nil {
		t.Fatalf("nfdump: %v: %s", err, out)
	}
	var fl []oracleFlow
	for line := range strings.Lines(string(out)) {
		c := strings.Split(line, "|")
		if len(c) != 9 {
			continue
		}
		for i := range c {
			c[i] = strings.TrimSpace(c[i])
		}
		ts := func(s string) int64 {
			tm, err := time.ParseInLocation("2006-01-02 15:04:05.000", s, time.Local)
			if err != nil {
				t.Fatalf("nfdump time %q: %v", s, err)
			}
			return tm.UnixMilli()
		}
		u := func(s string) uint64 {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				// nfdump prints ICMP's type and code as "type.code" in the port column.
				if a, b, ok := strings.Cut(s, "."); ok {
					x, _ := strconv.ParseUint(a, 10, 64)
					y, _ := strconv.ParseUint(b, 10, 64)
					return x<<8 | y
				}
				t.Fatalf("nfdump number %q in %q", s, line)
			}
			return v
		}
		proto := map[string]uint64{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMP6": 58}[c[6]]
		if proto == 0 {
			proto = u(c[6])
		}
		fl = append(fl, oracleFlow{start: ts(c[0]), end: ts(c[1]), src: netip.MustParseAddr(c[2]), dst: netip.MustParseAddr(c[3]),
			sport: uint16(u(c[4])), dport: uint16(u(c[5])), proto: uint8(proto), packets: u(c[7]), octects: u(c[8])})
	}
	return fl
}

func recordFlow(r *netflow.Record) oracleFlow {
	return oracleFlow{start: r.Start.UnixMilli(), end: r.End.UnixMilli(), src: r.SrcAddr.Unmap(), dst: r.DstAddr.Unmap(),
		sport: r.SrcPort, dport: r.DstPort, proto: r.Proto, packets: r.Packets, octects: r.Bytes}
}

// datagram is one export packet the test's socket received.
type datagram struct {
	at      time.Time
	from    netip.AddrPort
	payload []byte
}

// listen receives datagrams on a loopback socket until stopped.
type listener struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []datagram
	last time.Time
	done chan struct{}
}

func listenUDP(t testing.TB) *listener {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(8 << 20)
	l := &listener{conn: c, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got = append(l.got, datagram{at: time.Now(), from: from, payload: append([]byte(nil), buf[:n]...)})
			l.last = time.Now()
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-l.done })
	return l
}

func (l *listener) port() string { return strconv.Itoa(l.conn.LocalAddr().(*net.UDPAddr).Port) }

// quiet waits until nothing arrived for a while, then returns what did.
func (l *listener) quiet() []datagram {
	for {
		time.Sleep(300 * time.Millisecond)
		l.mu.Lock()
		idle := time.Since(l.last) > 700*time.Millisecond
		got := slices.Clone(l.got)
		l.mu.Unlock()
		if idle {
			return got
		}
	}
}

// softflowd exports a capture as NetFlow version v to every port given, in the foreground, tracking
// ports ("-T full") so flows are 5-tuples.
func softflowd(t testing.TB, capture string, version int, ports ...string) {
	t.Helper()
	var dst []string
	for _, p := range ports {
		dst = append(dst, "127.0.0.1:"+p)
	}
	cmd := exec.Command("softflowd", "-r", capture, "-n", strings.Join(dst, ","), "-v", strconv.Itoa(version), "-d", "-T", "full")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("softflowd: %v: %s", err, out)
	}
}

// writePcap writes datagrams as a capture (raw IPv4/UDP, link type 101), as tcpdump on a loopback
// would have caught them, to the given port.
func writePcap(t testing.TB, path string, port string, dgs []datagram) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	dport, _ := strconv.Atoi(port)
	for _, d := range dgs {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: d.from.Addr().AsSlice(), DstIP: net.IPv4(127, 0, 0, 1)}
		udp := &layers.UDP{SrcPort: layers.UDPPort(d.from.Port()), DstPort: layers.UDPPort(dport)}
		udp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(d.payload)); err != nil {
			t.Fatal(err)
		}
		b := sb.Bytes()
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: d.at, CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
}

// comparable adapts nfdump 1.7.1's times where they knowingly differ from the wire:
//   - v5: nfdump takes a flow time ahead of the header's sysUpTime (softflowd reading a file sets the
//     header's uptime to 0) as 2^32 ms (49.7 days) earlier; the decoder takes it as ahead, as nfdump
//     itself does for v9. The wire has no answer; the two agree modulo 2^32 ms.
//   - IPFIX: nfdump prints flowStartSysUpTime as the end and flowEndSysUpTime as the start (tshark
//     shows the same datagrams with a positive duration), so start and end are compared as a pair.
//   - v9 ICMPv6: nfdump's v9 reader ignores icmpTypeCodeIPv6 (element 139, which its IPFIX reader
//     maps to the destination port), so its ICMPv6 flows have port 0 where the decoder has type.code.
func comparable(f oracleFlow, version int) oracleFlow {
	switch version {
	case 5:
		f.start, f.end = f.start%(1<<32), f.end%(1<<32)
	case 9:
		if f.proto == 58 {
			f.dport = 0
		}
	case 10:
		f.start, f.end = min(f.start, f.end), max(f.start, f.end)
	}
	return f
}

// sameFlows fails t unless the two lists hold the same flows, as multisets.
func sameFlows(t testing.TB, what string, version int, ours, theirs []oracleFlow) {
	t.Helper()
	count := map[oracleFlow]int{}
	for _, f := range theirs {
		count[comparable(f, version)]++
	}
	var extra []string
	for _, f := range ours {
		k := comparable(f, version)
		if count[k] == 0 {
			extra = append(extra, f.String())
			continue
		}
		count[k]--
	}
	var missing []string
	for f, n := range count {
		for range n {
			missing = append(missing, f.String())
		}
	}
	if len(theirs) == 0 || len(extra) > 0 || len(missing) > 0 {
		slices.Sort(extra)
		slices.Sort(missing)
		t.Errorf("%s: %d flows, nfdump %d; only ours (%d): %s\nonly nfdump's (%d): %s", what, len(ours), len(theirs),
			len(extra), strings.Join(first(extra, 10), "; "), len(missing), strings.Join(first(missing, 10), "; "))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func filepathRoot(t testing.TB) string { return testenv.Pcaps(t) }
