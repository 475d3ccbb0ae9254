package sensor

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"

	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/processor/bpffilter"
)

// filter is a tcpdump expression compiled by libpcap for one interface. Its
// program returns the snap length for a packet it accepts, so the kernel
// truncates as well as filters; an empty expression accepts everything.
//
// It is compiled the way tcpdump compiles for a live Linux interface, on a
// libpcap handle opened on it (see bpffilter.CompileLive): only then does
// `vlan` test the tag's metadata. As with `tcpdump -i`, a filter without
// `vlan` also sees tagged frames as if untagged.
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
	var raw []bpf.RawInstruction
	err := bpffilter.ErrNoLiveHandle
	// A live handle on "any" would compile for cooked v1; the sensor frames
	// "any" as cooked v2 (lt), and runs the filter itself (see cooked.go).
	if iface != AnyInterface {
		raw, err = compileLive(expr, iface, snaplen)
	}
	if errors.Is(err, bpffilter.ErrNoLiveHandle) {
		raw, err = bpffilter.Compile(expr, uint32(lt), snaplen)
	}
	if err != nil {
		return nil, fmt.Errorf("--filter %q: %v", expr, compilerMessage(err))
	}
	f := &filter{expr: expr, raw: raw}
	if prog, ok := bpf.Disassemble(raw); ok {
		f.vm, _ = bpf.NewVM(prog) // refuses programs with extensions: then vm stays nil
	}
	if iface == AnyInterface && f.vm == nil {
		return nil, fmt.Errorf("--filter %q: on interface any the filter runs in userspace, where the kernel metadata it needs (VLAN tags) does not exist; name the interfaces instead", expr)
	}
	return f, nil
}

func compileLive(expr, iface string, snaplen int) ([]bpf.RawInstruction, error) {
	if iface == "" {
		return nil, bpffilter.ErrNoLiveHandle
	}
	return bpffilter.CompileLive(expr, iface, snaplen)
}

// compilerMessage is libpcap's own message, without bpffilter's repetition of
// the expression, which the flag's error names already.
func compilerMessage(err error) error {
	var ce *bpffilter.Error
	if errors.As(err, &ce) {
		return errors.New(ce.Msg)
	}
	return err
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
