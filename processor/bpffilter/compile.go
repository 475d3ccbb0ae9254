package bpffilter

/*
#cgo LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
)

// compileMu serialises pcap_compile, which kept global parser state in libpcap before 1.8 and
// costs nothing to guard: filters are compiled once per link type or interface.
var compileMu sync.Mutex

// Error is libpcap's refusal of an expression. Its Error names the expression and where it was
// compiled; Msg alone is libpcap's message, as tcpdump prints it.
type Error struct {
	Expr     string
	LinkType uint32 // set when compiled for a link type
	Iface    string // set when compiled on a live handle
	Msg      string
}

func (e *Error) Error() string {
	if e.Iface != "" {
		return fmt.Sprintf("filter %q on interface %s: %s", e.Expr, e.Iface, e.Msg)
	}
	return fmt.Sprintf("filter %q for link type %d: %s", e.Expr, e.LinkType, e.Msg)
}

// Compile turns a tcpdump filter expression into classic BPF for frames of a link type, a full
// LINKTYPE_ value (gopacket's pcap.CompileBPFFilter takes an 8-bit one, which cannot name SLL2).
// The program returns snaplen for the frames it accepts, so a kernel socket filter running it
// truncates as well as filters.
func Compile(expr string, linkType uint32, snaplen int) ([]bpf.RawInstruction, error) {
	compileMu.Lock()
	defer compileMu.Unlock()
	h := C.pcap_open_dead(dlt(linkType), C.int(snaplen))
	if h == nil {
		return nil, fmt.Errorf("libpcap cannot open a handle for link type %d", linkType)
	}
	defer C.pcap_close(h)
	raw, msg := compileOn(h, expr, C.PCAP_NETMASK_UNKNOWN)
	if msg != "" {
		return nil, &Error{Expr: expr, LinkType: linkType, Msg: msg}
	}
	return raw, nil
}

// linkTypeDLT maps the LINKTYPE_ values below 104 whose DLT_ differs. pcap_open_dead takes a
// DLT_, and libpcap's own mapping (linktype_to_dlt) is not exported: without this, raw IP
// frames (LINKTYPE_RAW, 101) could not be filtered at all.
var linkTypeDLT = map[uint32]C.int{
	100: C.DLT_ATM_RFC1483,
	101: C.DLT_RAW,
	102: C.DLT_SLIP_BSDOS,
	103: C.DLT_PPP_BSDOS,
}

func dlt(linkType uint32) C.int {
	if d, ok := linkTypeDLT[linkType]; ok {
		return d
	}
	return C.int(linkType)
}

// ErrNoLiveHandle wraps CompileLive's failure to open the interface, as opposed to the
// expression's failure to compile: the caller may then fall back to Compile.
var ErrNoLiveHandle = errors.New("no live libpcap handle")

// CompileLive compiles expr the way tcpdump does for a live Linux interface, on a libpcap handle
// activated on it. Only a live handle makes libpcap test `vlan` against the tag's metadata: the
// kernel has moved the outer VLAN tag out of the frame by the time a socket filter runs. Call it
// inside the interface's network namespace.
func CompileLive(expr, iface string, snaplen int) ([]bpf.RawInstruction, error) {
	h, err := openLive(iface, snaplen)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoLiveHandle, iface, err)
	}
	defer C.pcap_close(h)
	compileMu.Lock()
	defer compileMu.Unlock()
	raw, msg := compileOn(h, expr, liveNetmask(iface))
	if msg != "" {
		return nil, &Error{Expr: expr, Iface: iface, Msg: msg}
	}
	return raw, nil
}

// openLive activates a handle that only compiles: its ring is kept small.
func openLive(iface string, snaplen int) (*C.pcap_t, error) {
	cif := C.CString(iface)
	defer C.free(unsafe.Pointer(cif))
	errbuf := (*C.char)(C.calloc(C.PCAP_ERRBUF_SIZE, 1))
	defer C.free(unsafe.Pointer(errbuf))
	h := C.pcap_create(cif, errbuf)
	if h == nil {
		return nil, errors.New(C.GoString(errbuf))
	}
	C.pcap_set_snaplen(h, C.int(snaplen))
	C.pcap_set_buffer_size(h, 64<<10)
	// A warning (status > 0) leaves a usable handle; tcpdump carries on too.
	if status := C.pcap_activate(h); status < 0 {
		msg := C.GoString(C.pcap_geterr(h))
		if msg == "" {
			msg = C.GoString(C.pcap_statustostr(status))
		}
		C.pcap_close(h)
		return nil, errors.New(msg)
	}
	return h, nil
}

// liveNetmask is the interface's IPv4 netmask, which only `ip broadcast` needs; as tcpdump does,
// an interface without IPv4 compiles with the netmask unknown.
func liveNetmask(iface string) C.bpf_u_int32 {
	cif := C.CString(iface)
	defer C.free(unsafe.Pointer(cif))
	errbuf := (*C.char)(C.calloc(C.PCAP_ERRBUF_SIZE, 1))
	defer C.free(unsafe.Pointer(errbuf))
	var net, mask C.bpf_u_int32
	if C.pcap_lookupnet(cif, &net, &mask, errbuf) != 0 {
		return C.PCAP_NETMASK_UNKNOWN
	}
	return mask
}

// compileOn compiles on an open handle; msg is libpcap's error, "" on success. Hold compileMu.
func compileOn(h *C.pcap_t, expr string, netmask C.bpf_u_int32) (raw []bpf.RawInstruction, msg string) {
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	if C.pcap_compile(h, &prog, cexpr, 1, netmask) != 0 {
		return nil, C.GoString(C.pcap_geterr(h))
	}
	defer C.pcap_freecode(&prog)
	insns := unsafe.Slice(prog.bf_insns, int(prog.bf_len))
	raw = make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: uint16(in.code), Jt: uint8(in.jt), Jf: uint8(in.jf), K: uint32(in.k)}
	}
	return raw, ""
}
