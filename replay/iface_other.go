//go:build !linux

package replay

import (
	"context"
	"errors"
)

// Interface is only available on Linux, where AF_PACKET sockets exist.
type Interface struct{}

// OpenInterface fails off Linux: sending raw frames needs AF_PACKET.
func OpenInterface(name string) (*Interface, error) {
	return nil, errors.New("interface " + name + ": replaying onto an interface needs Linux (AF_PACKET)")
}

func (*Interface) String() string { return "interface" }
func (*Interface) Send(p Packet, done func(int, error)) {
	done(len(p.Data), errors.New("not supported"))
}
func (*Interface) Flush(context.Context) error { return nil }
func (*Interface) Close() error                { return nil }
