package flow

import (
	"testing"
	"unsafe"
)

// TestEntryFitsSizeClass: a table entry stays within the 160-byte allocation class; a field
// added past it costs 16 bytes or more per active flow.
func TestEntryFitsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 160 {
		t.Errorf("entry is %d bytes", n)
	}
}
