package replay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Interface sends frames on a network interface through an AF_PACKET raw
// socket, exactly as they are in the capture (link-layer header included).
type Interface struct {
	fd   int
	name string
	mtu  int
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
	return &Interface{fd: fd, name: name, mtu: ifi.MTU}, nil
}

func (i *Interface) String() string { return "interface " + i.name }

// Send writes one frame. The kernel refuses frames longer than the MTU plus
// the link header (EMSGSIZE) or shorter than the header: those count as
// failed, like tcpreplay's. A full transmit queue is waited out briefly.
func (i *Interface) Send(p Packet, done func(int, error)) {
	size := len(p.Data)
	for tries := 0; ; tries++ {
		_, err := unix.Write(i.fd, p.Data)
		switch {
		case err == nil:
			done(size, nil)
			return
		case errors.Is(err, unix.EINTR):
			continue
		case (errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN)) && tries < enobufsRetries:
			time.Sleep(enobufsWait)
			continue
		case errors.Is(err, unix.EMSGSIZE):
			done(size, fmt.Errorf("%s: frame of %d bytes is longer than MTU %d plus the link header", i, size, i.mtu))
		default:
			done(size, fmt.Errorf("%s: send %d bytes: %w", i, size, err))
		}
		return
	}
}

// Flush has nothing to wait for: every Send completed before returning.
func (i *Interface) Flush(context.Context) error { return nil }

func (i *Interface) Close() error { return unix.Close(i.fd) }
