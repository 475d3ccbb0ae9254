package flow

import (
	"testing"
	"unsafe"
)

// TestFlowFitsSizeClass: the Flow stays within the 160-byte allocation class; a field added
// past it costs 16 bytes or more per active flow.
func TestFlowFitsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Flow{}); n > 160 {
		t.Errorf("Flow is %d bytes", n)
	}
}
