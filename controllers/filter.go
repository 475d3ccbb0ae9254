package controllers

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/linktype"
	"capfleet.dev/capfleet/processor/bpffilter"
	"capfleet.dev/capfleet/processor/displayfilter"
	"capfleet.dev/capfleet/processor/flowfilter"
)

// checkSensorFilter compiles a CaptureSensor's filter with the compiler the sensors use, so a
// filter that would fail on a node is refused before anything is rolled out. The first failure
// is returned with libpcap's message first, then the interface and link type it failed for.
func checkSensorFilter(expr string, ifaces []string, snaplen int32) error {
	if expr == "" {
		return nil
	}
	if snaplen <= 0 {
		snaplen = bpffilter.DefaultSnaplen
	}
	for _, iface := range ifaces {
		for _, lt := range framings(iface) {
			if _, err := bpffilter.Compile(expr, uint32(lt), int(snaplen)); err != nil {
				return fmt.Errorf("%v (interface %s as %s)", compilerMessage(err), iface, lt)
			}
		}
	}
	return nil
}

// framings are the link types an interface may be captured as on a node. The operator cannot
// see a remote node's interfaces, so it assumes what libpcap would: a named interface is Ethernet
// (so are loopback and veth, which is nearly all a pod or node has), and `any` is Linux cooked,
// v1 before libpcap 1.10 and v2 since, so both. Cooked framing is not assumed for named
// interfaces: libpcap refuses `vlan`, `mpls` and `ether host` on it, and those are right on
// Ethernet. A tun-like interface (raw IP) is not assumed either, for the same reason; a filter
// that fails there fails in that node's sensor, which says so.
func framings(iface string) []linktype.Type {
	if iface == "any" {
		return []linktype.Type{linktype.LinuxSLL, linktype.LinuxSLL2}
	}
	return []linktype.Type{linktype.Ethernet}
}

// checkPipelineFilter compiles a PacketPipeline's filter as its processors do when they start.
func checkPipelineFilter(expr string) error {
	if _, err := bpffilter.NewSet(expr); err != nil {
		return compilerMessage(err)
	}
	return nil
}

// checkPipelineDisplayFilter compiles a PacketPipeline's display filter as its processors do.
func checkPipelineDisplayFilter(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return nil
	}
	_, err := displayfilter.Compile(expr)
	return err
}

// checkPipelineFlowFilter compiles a PacketPipeline's flow filter as its processors do.
func checkPipelineFlowFilter(expr string) error {
	_, err := flowfilter.Compile(expr)
	return err
}

// compilerMessage is libpcap's message alone: the status names the expression already.
func compilerMessage(err error) error {
	var ce *bpffilter.Error
	if errors.As(err, &ce) {
		return errors.New(ce.Msg)
	}
	return err
}

// refuseFilter stalls the pass when a filter in the spec was refused (err not nil), so nothing rolls out with
// it, and warns in an event naming the field.
func refuseFilter(rec record.EventRecorder, obj client.Object, p *pass, field, expr string, err error) {
	if err == nil {
		return
	}
	p.stop(outcome{stalled: true, reason: ReasonInvalidFilter, message: fmt.Sprintf("%s %q: %v", field, expr, err)})
	rec.Eventf(obj, "Warning", ReasonInvalidFilter, "%s", p.outcome.message)
}
