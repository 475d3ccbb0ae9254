package sensor

import (
	"fmt"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// filter is a tcpdump expression compiled by libpcap for one link type. Its
// program returns the snap length for a packet it accepts, so the kernel
// truncates as well as filters; an empty expression accepts everything.
type filter struct {
	expr string
	raw  []bpf.RawInstruction
	vm   *bpf.VM
}

func compileFilter(expr string, lt layers.LinkType, snaplen int) (*filter, error) {
	insns, err := pcap.CompileBPFFilter(lt, snaplen, expr)
	if err != nil {
		return nil, fmt.Errorf("--filter %q: %v", expr, err)
	}
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		return nil, fmt.Errorf("--filter %q: libpcap produced instructions the userspace BPF interpreter cannot run", expr)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("--filter %q: %v", expr, err)
	}
	return &filter{expr: expr, raw: raw, vm: vm}, nil
}

// keep runs the program in userspace and returns how many bytes of frame to
// keep (0: rejected). It covers the packets a ring received between binding
// and attaching the kernel filter.
func (f *filter) keep(frame []byte) int {
	n, err := f.vm.Run(frame)
	if err != nil {
		return 0
	}
	return min(n, len(frame))
}
