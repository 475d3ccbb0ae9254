package block

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Bloom is a block's address index: a Bloom filter over the IP addresses its packets carry (every IP
// header, outer and inner), so that a reader asking for one host skips the blocks that cannot hold it.
// Serialized as it is stored: one byte of hash count, then the bit array (a power of two of 64-bit
// words). An empty Bloom (no bytes) answers "maybe" to everything, so a block without an index is read.
type Bloom []byte

// bitsPerAddr gives a false-positive rate near 1% with 7 hashes.
const (
	bitsPerAddr = 10
	bloomHashes = 7
)

// addrHash is a stable 64-bit hash of an address: FNV-1a then a 64-bit finalizer. maphash would differ
// between processes.
func addrHash(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// NewBloom indexes addrs.
func NewBloom(addrs map[netip.Addr]struct{}) Bloom {
	words := 1
	for words*64 < len(addrs)*bitsPerAddr {
		words <<= 1
	}
	f := make(Bloom, 1+8*words)
	f[0] = bloomHashes
	for a := range addrs {
		f.add(addrHash(a))
	}
	return f
}

// probes yields the bit positions of hash h by double hashing.
func (f Bloom) probe(h uint64, i int) (word int, bit uint64) {
	nbits := uint64(len(f)-1) * 8
	h1, h2 := h, bits.RotateLeft64(h, 32)|1
	pos := (h1 + uint64(i)*h2) & (nbits - 1)
	return 1 + int(pos/64)*8, 1 << (pos % 64)
}

func (f Bloom) add(h uint64) {
	for i := 0; i < int(f[0]); i++ {
		w, bit := f.probe(h, i)
		binary.LittleEndian.PutUint64(f[w:], binary.LittleEndian.Uint64(f[w:])|bit)
	}
}

// MayContain is false only when no packet of the block carries a.
func (f Bloom) MayContain(a netip.Addr) bool {
	if !f.valid() {
		return true
	}
	h := addrHash(a)
	for i := 0; i < int(f[0]); i++ {
		w, bit := f.probe(h, i)
		if binary.LittleEndian.Uint64(f[w:])&bit == 0 {
			return false
		}
	}
	return true
}

// valid: a hash count and a power-of-two number of words; anything else reads as "no index".
func (f Bloom) valid() bool {
	if len(f) < 9 || (len(f)-1)%8 != 0 || f[0] == 0 || f[0] > 32 {
		return false
	}
	words := (len(f) - 1) / 8
	return words&(words-1) == 0
}
