//go:build linux

package replay

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"capfleet.dev/capfleet/pcapfile"
)

// vethPair is a network namespace the test made, holding both ends of a veth
// pair: frames replayed on one end arrive only at the other, never on the host.
type vethPair struct {
	ns         string
	send, recv string
}

// needRoot ends a test that must create namespaces: a failure in CI, where the
// runner is root, a skip on a developer's unprivileged machine.
func needRoot(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create a network namespace)")
	}
	for _, tool := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (install it with hack/deps.sh)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ")
	testenv.Missing(t, "%s", msg)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newVethPair makes the namespace with IPv6 off (no router solicitations or
// MLD reports of its own on the wire) and both veth ends up with the given MTU.
func newVethPair(t testing.TB, mtu int) *vethPair {
	t.Helper()
	needRoot(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	v := &vethPair{ns: "cfreplay-" + hex.EncodeToString(suffix), send: "rp-send", recv: "rp-recv"}
	run(t, "ip", "netns", "add", v.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", v.ns).Run() })
	in := func(args ...string) { t.Helper(); run(t, "ip", append([]string{"netns", "exec", v.ns}, args...)...) }
	in("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	in("ip", "link", "add", v.send, "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", v.recv, "mtu", fmt.Sprint(mtu))
	in("ip", "link", "set", v.send, "up")
	in("ip", "link", "set", v.recv, "up")
	return v
}

// openSender opens the replay target on the sending end. A packet socket
// belongs to the namespace it was created in, so it is made on a thread moved
// into the namespace; that thread is then thrown away rather than reused.
func (v *vethPair) openSender(t testing.TB) *Interface {
	t.Helper()
	var i *Interface
	var err error
	v.inNetns(t, func() { i, err = OpenInterface(v.send) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.Close() })
	return i
}

// rxPackets returns a reader of the receiving end's packet counter. The
// counters file is opened inside the namespace, which binds it there, so it
// can be read from any thread afterwards, cheaply enough to sample it every
// millisecond.
func (v *vethPair) rxPackets(t testing.TB) func() uint64 {
	t.Helper()
	var f *os.File
	var err error
	v.inNetns(t, func() { f, err = os.Open("/proc/thread-self/net/dev") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func() uint64 {
		// A buffer of each call's own: a test samples the counter from a goroutine while it reads it.
		buf := make([]byte, 4096)
		n, err := f.ReadAt(buf, 0)
		if err != nil && err != io.EOF {
			t.Errorf("reading the namespace's interface counters: %v", err)
			return 0
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			name, stats, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) != v.recv {
				continue
			}
			// Fields: receive bytes, packets, ...
			if f := strings.Fields(stats); len(f) > 1 {
				c, _ := strconv.ParseUint(f[1], 10, 64)
				return c
			}
		}
		t.Errorf("no %s in the namespace's interface counters", v.recv)
		return 0
	}
}

// tcpdump captures what arrives at the receiving end, as the test's oracle.
type tcpdump struct {
	ns   string
	cmd  *exec.Cmd
	path string
	errb *bytes.Buffer
}

func (v *vethPair) startTcpdump(t *testing.T) *tcpdump {
	t.Helper()
	d := &tcpdump{ns: v.ns, path: filepath.Join(t.TempDir(), "out.pcap"), errb: &bytes.Buffer{}}
	// -Q in: only what the veth receives; -U: each packet written as it comes,
	// so the test can tell when all have arrived; -B with -s: a ring of 16,000
	// slots, so a busy node that stalls tcpdump for a moment costs no packet
	// (with -s 0 each slot is 256 KiB and the ring held only 128 packets). The
	// MTU keeps frames under the snap length; a longer one would show as a
	// mismatch, not pass unseen.
	d.cmd = exec.Command("ip", "netns", "exec", v.ns, "tcpdump", "-i", v.recv, "-Q", "in", "-n", "-s", "2048",
		"-B", "32768", "--immediate-mode", "-U", "-w", d.path)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			d.errb.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "listening on "+v.recv) {
				ready <- nil
				sent = true
			}
		}
		if !sent {
			ready <- fmt.Errorf("tcpdump ended before listening:\n%s", d.errb)
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump not listening after 10s:\n%s", d.errb)
	}
	return d
}

// stop ends tcpdump (ours, by PID) so it flushes and closes its file.
func (d *tcpdump) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// waitFor returns the capture once it holds want packets (or after a grace
// period with fewer, for the caller to report), with tcpdump stopped.
func (d *tcpdump) waitFor(t *testing.T, want int) []capturedPacket {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := countPackets(d.path); n >= want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A moment more, so a surplus packet would be seen, then stop.
	time.Sleep(200 * time.Millisecond)
	d.stop()
	pkts, err := readCapture(d.path)
	if err != nil {
		t.Fatalf("reading tcpdump's capture: %v\ntcpdump said:\n%s", err, d.errb)
	}
	if len(pkts) != want {
		// Say where packets went missing: tcpdump's own drop count, the veth's counters.
		link, _ := exec.Command("ip", "netns", "exec", d.ns, "ip", "-s", "-s", "link", "show").CombinedOutput()
		t.Logf("capture holds %d packets, %d expected; tcpdump said:\n%s\nlinks:\n%s", len(pkts), want, d.errb, link)
	}
	return pkts
}

type capturedPacket struct {
	ts     time.Time
	length int
	data   []byte
}

func readCapture(path string) ([]capturedPacket, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []capturedPacket
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, capturedPacket{ts: p.Timestamp, length: p.Length, data: append([]byte(nil), p.Data...)})
	}
}

// countPackets counts the complete records of a capture still being written.
func countPackets(path string) (int, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			return n, nil
		}
		n++
	}
}

// replayOnto runs the engine against the veth's sending end.
func replayOnto(t *testing.T, v *vethPair, file string, pace Pace, loops int, limit uint64) Summary {
	t.Helper()
	r, err := New(Config{Open: OpenFile(file), Pace: pace, Loops: loops, Limit: limit, Target: v.openSender(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s\n%s", filepath.Base(file), pace, sum)
	return sum
}

// inNetns runs f on a thread moved into the namespace (sockets and interface
// lookups it makes belong there); the thread is discarded afterwards.
func (v *vethPair) inNetns(t testing.TB, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := os.Open(filepath.Join("/run/netns", v.ns))
		if err != nil {
			errc <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", v.ns, err)
			return
		}
		f()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
