package replay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Interface sends frames on a network interface through an AF_PACKET raw
// socket, exactly as they are in the capture (link-layer header included).
type Interface struct {
	fd   int
	name string
	mtu  int

	// One sendmmsg's messages, each pointing at one iovec: reused so that
	// sending allocates nothing.
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	one  [1]Packet
}

// enobufsRetries bounds how long a full transmit queue may hold a packet
// back (each retry waits enobufsWait) before it counts as failed.
const (
	enobufsRetries = 2000
	enobufsWait    = 50 * time.Microsecond
)

// OpenInterface opens a send-only packet socket bound to the named interface
// in the calling thread's network namespace.
func OpenInterface(name string) (*Interface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface %q is down", name)
	}
	// Protocol 0: the socket receives nothing, so no receive queue fills up
	// behind a replay that only sends.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("interface %q: opening a packet socket needs CAP_NET_RAW: %w", name, err)
		}
		return nil, fmt.Errorf("interface %q: packet socket: %w", name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("interface %q: bind: %w", name, err)
	}
	return &Interface{fd: fd, name: name, mtu: ifi.MTU,
		msgs: make([]unix.Mmsghdr, batchPackets), iovs: make([]unix.Iovec, batchPackets)}, nil
}

func (i *Interface) String() string { return "interface " + i.name }

// Send writes one frame; SendBatch says how failures count.
func (i *Interface) Send(p Packet, done func(int, error)) {
	i.one[0] = p
	if sent, _ := i.SendBatch(i.one[:], done); sent == 1 {
		done(len(p.Data), nil)
	}
	i.one[0] = Packet{}
}

// SendBatch writes frames in order with as few sendmmsg calls as the kernel
// allows. The kernel refuses frames longer than the MTU plus the link header
// (EMSGSIZE) or shorter than the header: those count as failed, like
// tcpreplay's, and the frames after them are still sent. A full transmit
// queue is waited out briefly.
//
// sendmmsg stops at the first frame it cannot send and reports how many went
// before it; called again from that frame, it returns that frame's error, so
// every frame's outcome is known exactly.
func (i *Interface) SendBatch(ps []Packet, failed func(int, error)) (sent, sentBytes int) {
	tries := 0
	for len(ps) > 0 {
		n, err := i.sendmmsg(ps)
		for _, p := range ps[:n] {
			sentBytes += len(p.Data)
		}
		sent += n
		ps = ps[n:]
		if n > 0 {
			tries = 0
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EINTR):
		case (errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN)) && tries < enobufsRetries:
			tries++
			time.Sleep(enobufsWait)
		default:
			failed(len(ps[0].Data), i.sendError(len(ps[0].Data), err))
			ps, tries = ps[1:], 0
		}
	}
	return sent, sentBytes
}

func (i *Interface) sendError(size int, err error) error {
	if errors.Is(err, unix.EMSGSIZE) {
		return fmt.Errorf("%s: frame of %d bytes is longer than MTU %d plus the link header", i, size, i.mtu)
	}
	return fmt.Errorf("%s: send %d bytes: %w", i, size, err)
}

// sendmmsg sends up to len(i.msgs) frames of ps, one message each, and
// returns how many the kernel took and, when that is none, why.
func (i *Interface) sendmmsg(ps []Packet) (int, error) {
	k := min(len(ps), len(i.msgs))
	for j, p := range ps[:k] {
		i.iovs[j] = unix.Iovec{Base: unsafe.SliceData(p.Data)}
		i.iovs[j].SetLen(len(p.Data))
		i.msgs[j] = unix.Mmsghdr{Hdr: unix.Msghdr{Iov: &i.iovs[j], Iovlen: 1}}
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(i.fd), uintptr(unsafe.Pointer(&i.msgs[0])), uintptr(k), 0, 0, 0)
	clear(i.iovs[:k]) // hold no frame of the caller's past this call
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Flush has nothing to wait for: every Send completed before returning.
func (i *Interface) Flush(context.Context) error { return nil }

func (i *Interface) Close() error { return unix.Close(i.fd) }
