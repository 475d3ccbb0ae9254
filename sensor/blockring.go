package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/gopacket/afpacket"
	"golang.org/x/sys/unix"
)

// blockRing reads a TPACKET_V3 ring block by block, in afpacket's mapping of it (which afpacket keeps
// unexported: ringMemory finds it; a second mapping of the ring would count its pages twice in the
// sensor's resident memory). afpacket's ZeroCopyReadPacketData takes a lock, adds to an atomic
// counter and fills a CaptureInfo for every packet, a few tens of ns a packet on the sensor's hot
// path; here a packet is a few loads from its header. afpacket still opens, configures, maps and
// closes the socket.
type blockRing struct {
	fd        int
	mem       []byte
	blockSize int
	blocks    int
	cur       int  // the block being read
	held      bool // cur is ours (TP_STATUS_USER) until it is handed back
	left      int  // packets of cur not read yet
	at        int  // offset in mem of the next packet's header
}

// Offsets in struct tpacket_block_desc (its tpacket_hdr_v1) and struct tpacket3_hdr
// (linux/if_packet.h, a stable UAPI).
const (
	blkStatus      = 8
	blkNumPkts     = 12
	blkFirstPacket = 16
	tp3NextOffset  = 0
	tp3Sec         = 4
	tp3Nsec        = 8
	tp3Len         = 16
)

func newBlockRing(fd int, mem []byte, blockSize, blocks int) (*blockRing, error) {
	if blockSize <= 0 || blocks <= 0 || len(mem) != blockSize*blocks {
		return nil, fmt.Errorf("the ring's mapping is %d bytes, not %d blocks of %d", len(mem), blocks, blockSize)
	}
	return &blockRing{fd: fd, mem: mem, blockSize: blockSize, blocks: blocks}, nil
}

// ringMemory is afpacket's mapping of tp's ring, read through reflection without touching it.
func ringMemory(tp *afpacket.TPacket) ([]byte, bool) {
	f := reflect.ValueOf(tp).Elem().FieldByName("ring")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 || f.Len() == 0 {
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(f.Pointer())), f.Len()), true
}

// errRingPoll is a socket error the ring's poll reported (POLLERR): the interface went down.
var errRingPoll = errors.New("poll on the capture socket reported an error")

// next returns the next packet: its frame (valid until the next call), capture time and length on
// the wire. ok is false when the ring has no packet ready; err reports a pending socket error then.
func (b *blockRing) next() (frame []byte, ts time.Time, length int, ok bool, err error) {
	for b.left == 0 {
		if b.held {
			// Handed back only now: the last frame returned pointed into it until this call.
			atomic.StoreUint32(b.status(b.cur), unix.TP_STATUS_KERNEL)
			b.held = false
			b.cur = (b.cur + 1) % b.blocks
		}
		if atomic.LoadUint32(b.status(b.cur))&unix.TP_STATUS_USER == 0 {
			return nil, time.Time{}, 0, false, b.pollError()
		}
		desc := b.mem[b.cur*b.blockSize:]
		b.held = true
		b.left = int(binary.NativeEndian.Uint32(desc[blkNumPkts:]))
		b.at = b.cur*b.blockSize + int(binary.NativeEndian.Uint32(desc[blkFirstPacket:]))
	}
	h := b.mem[b.at:]
	b.left--
	b.at += int(binary.NativeEndian.Uint32(h[tp3NextOffset:]))
	mac := int(binary.NativeEndian.Uint16(h[tp3Mac:]))
	snap := int(binary.NativeEndian.Uint32(h[tp3SnapLen:]))
	ts = time.Unix(int64(binary.NativeEndian.Uint32(h[tp3Sec:])), int64(binary.NativeEndian.Uint32(h[tp3Nsec:])))
	return h[mac : mac+snap : mac+snap], ts, int(binary.NativeEndian.Uint32(h[tp3Len:])), true, nil
}

func (b *blockRing) status(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b.mem[block*b.blockSize+blkStatus]))
}

// pollError looks, without waiting, whether the socket has an error pending.
func (b *blockRing) pollError() error {
	fds := [1]unix.PollFd{{Fd: int32(b.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds[:], 0); err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0 {
		return errRingPoll
	}
	return nil
}

// close lets go of the ring, which afpacket unmaps when it closes.
func (b *blockRing) close() { b.mem = nil }
