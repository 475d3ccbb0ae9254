package bpffilter

/*
#cgo LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
)

// compileMu serialises pcap_compile, which kept global parser state in libpcap before 1.8 and
// costs nothing to guard: filters are compiled once per link type.
var compileMu sync.Mutex

// compile turns a tcpdump filter expression into classic BPF for a link type, with libpcap
// itself so the program is exactly what tcpdump would run. The link type is a full LINKTYPE_
// value (gopacket's pcap.CompileBPFFilter takes an 8-bit one, which cannot name SLL2).
func compile(expr string, linkType uint32, snaplen int) ([]bpf.RawInstruction, error) {
	compileMu.Lock()
	defer compileMu.Unlock()
	h := C.pcap_open_dead(C.int(linkType), C.int(snaplen))
	if h == nil {
		return nil, fmt.Errorf("libpcap cannot open a handle for link type %d", linkType)
	}
	defer C.pcap_close(h)
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	if C.pcap_compile(h, &prog, cexpr, 1, C.PCAP_NETMASK_UNKNOWN) != 0 {
		return nil, fmt.Errorf("filter %q for link type %d: %s", expr, linkType, C.GoString(C.pcap_geterr(h)))
	}
	defer C.pcap_freecode(&prog)
	insns := unsafe.Slice(prog.bf_insns, int(prog.bf_len))
	out := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		out[i] = bpf.RawInstruction{Op: uint16(in.code), Jt: uint8(in.jt), Jf: uint8(in.jf), K: uint32(in.k)}
	}
	return out, nil
}
