package sensor

import (
	"errors"
	"fmt"

	"github.com/google/gopacket/pcap"
	"golang.org/x/net/bpf"

	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/processor/bpffilter"
)

// filter is a tcpdump expression compiled by libpcap for one interface. Its
// program returns the snap length for a packet it accepts, so the kernel
// truncates as well as filters; an empty expression accepts everything.
//
// It is compiled the way tcpdump compiles for a live Linux interface, on a
// libpcap handle opened on it: the kernel has moved the outer VLAN tag out of
// the frame by the time the filter runs, and only a live handle makes libpcap
// test `vlan` against the tag's metadata instead of bytes no longer there.
// As with `tcpdump -i`, a filter without `vlan` also sees tagged frames as if
// untagged.
type filter struct {
	expr string
	raw  []bpf.RawInstruction
	vm   *bpf.VM // nil when the program needs kernel extensions (VLAN metadata)
}

// compileFilter compiles expr for the interface. Call it inside the capture
// namespace. Without an interface name, or where no live handle can be
// opened, it compiles for the link type alone, which differs only for `vlan`
// filters.
func compileFilter(expr, iface string, lt linktype.Type, snaplen int) (*filter, error) {
	raw, err := compileLive(expr, iface, snaplen)
	if errors.Is(err, errNoLiveHandle) {
		// bpffilter rather than gopacket's compiler: gopacket's link type has 8 bits.
		raw, err = bpffilter.Program(expr, uint32(lt), snaplen)
	}
	if err != nil {
		return nil, fmt.Errorf("--filter %q: %v", expr, err)
	}
	f := &filter{expr: expr, raw: raw}
	if prog, ok := bpf.Disassemble(raw); ok {
		f.vm, _ = bpf.NewVM(prog) // refuses programs with extensions: then vm stays nil
	}
	return f, nil
}

var errNoLiveHandle = errors.New("no live libpcap handle")

func compileLive(expr, iface string, snaplen int) ([]bpf.RawInstruction, error) {
	if iface == "" {
		return nil, errNoLiveHandle
	}
	in, err := pcap.NewInactiveHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLiveHandle, err)
	}
	defer in.CleanUp()
	if err := in.SetSnapLen(snaplen); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLiveHandle, err)
	}
	// The handle only compiles: keep the ring libpcap allocates small.
	if err := in.SetBufferSize(64 << 10); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLiveHandle, err)
	}
	h, err := in.Activate()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLiveHandle, err)
	}
	defer h.Close()
	insns, err := h.CompileBPFFilter(expr)
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return raw, nil
}

// keep returns how many bytes of frame to keep (0: rejected) for a packet
// that reached a ring between binding and attaching the kernel filter. It
// runs the program in userspace; a program that needs kernel metadata cannot
// run there, and such early packets are rejected: capture starts when the
// filter is attached.
func (f *filter) keep(frame []byte) int {
	if f.vm == nil {
		return 0
	}
	n, err := f.vm.Run(frame)
	if err != nil {
		return 0
	}
	return min(n, len(frame))
}
