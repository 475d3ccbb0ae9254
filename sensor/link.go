package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"capfleet.dev/capfleet/linktype"
)

// link is what the sensor needs to know about an interface.
type link struct {
	Name     string
	Index    int
	LinkType linktype.Type
	Loopback bool
	// Any is tcpdump's pseudo-interface "any": every interface of the
	// namespace, each packet framed as Linux cooked v2 (see cooked.go).
	Any bool
	// LoIndex is the loopback's index when Any: its outgoing copies are
	// dropped, as libpcap does, since each is seen again coming in.
	LoIndex int
	// SpeedMbps is the link speed the driver reports, 0 when unknown.
	SpeedMbps int
}

// AnyInterface captures on every interface, as `tcpdump -i any` does.
const AnyInterface = "any"

// lookupLink finds an interface and the framing AF_PACKET delivers on it.
// Call it inside the capture namespace.
func lookupLink(name string) (link, error) {
	if name == AnyInterface {
		l := link{Name: name, LinkType: linktype.LinuxSLL2, Any: true}
		if lo, err := net.InterfaceByName("lo"); err == nil {
			l.LoIndex = lo.Index
		}
		return l, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return link{}, fmt.Errorf("interface %q not found", name)
	}
	arphrd, _, err := linkStats(ifi.Index)
	if err != nil {
		return link{}, fmt.Errorf("interface %q: %w", name, err)
	}
	lt, ok := linkTypeOfARPHRD(arphrd)
	if !ok {
		return link{}, fmt.Errorf("interface %q: hardware type %d is not supported (Ethernet, loopback, or raw IP like tun)", name, arphrd)
	}
	return link{Name: name, Index: ifi.Index, LinkType: lt, Loopback: arphrd == unix.ARPHRD_LOOPBACK, SpeedMbps: linkSpeedMbps(name)}, nil
}

func linkTypeOfARPHRD(t uint16) (linktype.Type, bool) {
	switch t {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return linktype.Ethernet, true
	case unix.ARPHRD_NONE: // tun, wireguard: AF_PACKET hands over bare IP
		return linktype.Raw, true
	}
	return 0, false
}

// linkStats asks rtnetlink for an interface's hardware type and its
// rx_dropped counter (the value /sys/class/net/IF/statistics/rx_dropped shows,
// read without needing a sysfs mounted for the capture namespace).
func linkStats(index int) (arphrd uint16, rxDropped uint64, err error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return 0, 0, fmt.Errorf("rtnetlink: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, 0, fmt.Errorf("rtnetlink: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		info := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		if int(info.Index) != index {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return 0, 0, fmt.Errorf("rtnetlink: %w", err)
		}
		for _, a := range attrs {
			// struct rtnl_link_stats64: rx_packets, tx_packets, rx_bytes,
			// tx_bytes, rx_errors, tx_errors, rx_dropped, ... (u64 each)
			if a.Attr.Type == unix.IFLA_STATS64 && len(a.Value) >= 7*8 {
				rxDropped = binary.NativeEndian.Uint64(a.Value[6*8:])
			}
		}
		return info.Type, rxDropped, nil
	}
	return 0, 0, fmt.Errorf("interface index %d: %w", index, errLinkGone)
}

// errLinkGone: the interface a ring is bound to no longer exists. A new one
// under the same name is another interface, which the ring will never see.
var errLinkGone = errors.New("interface is gone")
