package decodecmd

import (
	"capfleet.dev/capfleet/internal/testenv"

	"bufio"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"testing"
)

// needTool returns the path of an oracle binary, failing under CI=true when it is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, "%s not installed: run bash hack/deps.sh", name)
	}
	return p
}

// fileLinkType reads the link type a capture file declares up front: the pcap file header's,
// or for pcapng the first interface description block's. ok is false for anything else.
func fileLinkType(path string) (lt uint32, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	br := r.(*bufio.Reader)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, false
		}
		r = zr
	}
	head := make([]byte, 24)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, false
	}
	switch binary.LittleEndian.Uint32(head) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		return binary.LittleEndian.Uint32(head[20:]), true
	case 0xd4c3b2a1, 0x4d3cb2a1:
		return binary.BigEndian.Uint32(head[20:]), true
	case 0x0a0d0d0a:
		var order binary.ByteOrder = binary.LittleEndian
		if binary.LittleEndian.Uint32(head[8:]) != 0x1a2b3c4d {
			order = binary.BigEndian
		}
		shbLen := int(order.Uint32(head[4:]))
		if shbLen < 24 || shbLen > 1<<20 {
			return 0, false
		}
		rest := make([]byte, shbLen-24+12)
		if _, err := io.ReadFull(r, rest); err != nil {
			return 0, false
		}
		idb := rest[shbLen-24:]
		if order.Uint32(idb) != 1 {
			return 0, false
		}
		return uint32(order.Uint16(idb[8:])), true
	}
	return 0, false
}
