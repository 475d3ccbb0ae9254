package bpffilter

import (
	"errors"
	"testing"

	"golang.org/x/net/bpf"
)

// The program returns the snap length it was compiled for, so a socket filter truncates.
func TestCompileReturnsSnaplen(t *testing.T) {
	raw, err := Compile("", 1, 96)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, raw)
	if n, err := vm.Run(make([]byte, 1500)); err != nil || n != 96 {
		t.Fatalf("run: %d, %v; want 96", n, err)
	}
}

// A refusal carries libpcap's own message, which the operator shows in status as it is.
func TestCompileErrorIsLibpcaps(t *testing.T) {
	_, err := Compile("vlan", 113, DefaultSnaplen)
	var ce *Error
	if !errors.As(err, &ce) || ce.Msg != "no VLAN support for Linux cooked v1" || ce.LinkType != 113 {
		t.Fatalf("got %#v", err)
	}
}

// Opening a live handle needs the interface and CAP_NET_RAW; its failure is told apart from
// the expression's, so the sensor can fall back to compiling for the link type.
func TestCompileLive(t *testing.T) {
	if _, err := CompileLive("tcp", "capfleet-no-such-if", 96); !errors.Is(err, ErrNoLiveHandle) {
		t.Fatalf("missing interface: %v", err)
	}
	if _, err := CompileLive("tcp", "lo", 96); errors.Is(err, ErrNoLiveHandle) {
		t.Skipf("no live handle on lo (root needed): %v", err)
	}
	raw, err := CompileLive("vlan", "lo", 96)
	if err != nil {
		t.Fatal(err)
	}
	if insns, _ := bpf.Disassemble(raw); !hasExtension(insns) {
		t.Fatalf("live `vlan` does not load the VLAN metadata: %v", insns)
	}
	_, err = CompileLive("tcp and (", "lo", 96)
	var ce *Error
	if !errors.As(err, &ce) || ce.Iface != "lo" {
		t.Fatalf("syntax error: %#v", err)
	}
}

func newVM(t *testing.T, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("undecodable program")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func hasExtension(insns []bpf.Instruction) bool {
	for _, in := range insns {
		if _, ok := in.(bpf.LoadExtension); ok {
			return true
		}
	}
	return false
}

// Raw IP frames carry LINKTYPE_RAW (101), which libpcap knows as DLT_RAW (12 on Linux).
func TestCompileRawIP(t *testing.T) {
	raw, err := Compile("udp port 53", 101, DefaultSnaplen)
	if err != nil {
		t.Fatal(err)
	}
	// IPv4, 20-byte header, protocol UDP, then source port 1024 and destination port 53.
	frame := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0x00, 0, 53, 0, 8, 0, 0}
	if n, err := newVM(t, raw).Run(frame); err != nil || n == 0 {
		t.Fatalf("raw IPv4 DNS packet rejected: %d, %v", n, err)
	}
}
