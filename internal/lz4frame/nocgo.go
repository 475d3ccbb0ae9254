//go:build !cgo

package lz4frame

import "errors"

// Append appends to dst one lz4 frame of src (see the package comment). It allocates only when dst
// lacks room for the frame's worst case, then once.
func Append(dst, src []byte) ([]byte, error) { return appendPure(dst, src) }

func bound(n int) int { return pureBound(n) }

// UsesLiblz4 tells whether Append uses liblz4 (cgo) rather than pierrec/lz4.
const UsesLiblz4 = false

func appendWithBlock(dst, _ []byte, _ int) ([]byte, error) {
	return dst, errors.New("lz4frame: built without cgo: no liblz4")
}
