package sensor

import (
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ring sized from the interface (--ring-blocks 0, the default): ringHold of the interface's line
// rate, which covers a capture goroutine descheduled or a producer briefly behind, within
// [minAutoRing, maxAutoRing]. The ring is resident memory from the moment it is mapped (the kernel
// allocates all of it), so a fixed size either wastes memory on a 1 Gbit/s node or is too small at
// 25 Gbit/s and more. An interface whose speed the kernel does not know (loopback, tun, "any") is
// taken for a 10 Gbit/s one.
const (
	ringHold         = 16 * time.Millisecond
	minAutoRing      = 8 << 20
	maxAutoRing      = 64 << 20
	unknownSpeedMbps = 10000
	// maxFrameOnWire is a full Ethernet frame with its VLAN tag: what a packet at line rate can be,
	// against which a --snaplen below it shrinks the bytes a ring keeps.
	maxFrameOnWire = 1518
)

// Block sizes when --ring-block-size-kb is 0: a block is handed to the sensor when it is full (or at
// its timeout), and each hand-over can wake an idle sensor, which costs context switches (on the
// benchmark's VM, 4 MiB blocks cut the whole sensor's CPU a packet by about a tenth against 1 MiB
// ones at 300,000 packets/s); a ring of few blocks, though, holds less than its size, since the block
// being read is not being filled. So a block is a fifth of the ring, between 1 and 4 MiB, in whole
// powers of two; a ring whose blocks are counted by the spec has 1 MiB blocks, as before.
const (
	minAutoBlock   = 1 << 20
	maxAutoBlock   = 4 << 20
	autoBlockShare = 5
)

// autoBlockSize is the block size for a ring of ringBytes (a multiple of minAutoBlock) that
// holds packets of snaplen bytes.
func autoBlockSize(ringBytes, snaplen int) int {
	b := minAutoBlock
	for b < maxAutoBlock && 2*b*autoBlockShare <= ringBytes {
		b *= 2
	}
	for b < snaplen+tpacketOverhead {
		b *= 2
	}
	return b
}

// autoRingBlocks is the blocks of blockSize each of the interface's rings gets: ringHold of line
// rate, of which a ring keeps at most snaplen bytes a packet (plus its header), split across the
// interface's rings when a fanout group spreads it.
func autoRingBlocks(speedMbps, snaplen, blockSize, rings int) int {
	if speedMbps <= 0 {
		speedMbps = unknownSpeedMbps
	}
	bytes := float64(speedMbps) * 1e6 / 8 * ringHold.Seconds()
	if snaplen < maxFrameOnWire {
		bytes = bytes * float64(snaplen+tpacketOverhead) / float64(maxFrameOnWire+tpacketOverhead)
	}
	perRing := min(max(int(bytes)/max(rings, 1), minAutoRing), maxAutoRing)
	return max((perRing+blockSize-1)/blockSize, 2)
}

// linkSpeedMbps asks the driver for the link speed in Mbit/s (ETHTOOL_GSET, which veth, physical
// NICs and most virtual ones answer), 0 when it does not say. It is an ioctl rather than
// /sys/class/net/IF/speed because the sysfs mounted in the sensor's namespace does not show a
// --netns capture namespace's interfaces. Call it inside the capture namespace.
func linkSpeedMbps(name string) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	// struct ethtool_cmd: the legacy query every driver with link settings still answers.
	var cmd struct {
		cmd, supported, advertising uint32
		speed                       uint16
		duplex, port, phyAddress    uint8
		transceiver, autoneg, mdio  uint8
		maxTxPkt, maxRxPkt          uint32
		speedHi                     uint16
		mdix, mdixCtrl              uint8
		lpAdvertising               uint32
		reserved                    [2]uint32
	}
	cmd.cmd = unix.ETHTOOL_GSET
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&cmd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&cmd)
	if errno != 0 {
		return 0
	}
	speed := uint32(cmd.speedHi)<<16 | uint32(cmd.speed)
	if speed == 0 || speed == 0xffffffff || speed == 0xffff { // SPEED_UNKNOWN
		return 0
	}
	return int(speed)
}
