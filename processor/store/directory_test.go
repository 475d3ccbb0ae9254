package store

import (
	"testing"
	"time"
)

// A bucket's directory row is written once per directoryReuse, and lives that much longer than the
// blocks, so a block written while its row was being skipped never outlives the row.
func TestDirectoryRowsAreReusedAndOutliveTheirBlocks(t *testing.T) {
	var r recentRows
	k := directoryKey{minuteIndex, "s", time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()}
	if r.fresh(k) {
		t.Fatal("a row never written is fresh")
	}
	r.written([]directoryKey{k})
	if !r.fresh(k) || r.fresh(directoryKey{minuteIndex, "other", k.bucket}) || r.fresh(directoryKey{hourIndex, "s", k.bucket}) {
		t.Fatal("the written row is not fresh, or another sensor's or level's is")
	}
	r.when[k] = time.Now().Add(-directoryReuse)
	if r.fresh(k) {
		t.Fatal("a row written directoryReuse ago is still fresh")
	}
	if got := directoryTTL(3600); got != 3600+int(directoryReuse/time.Second) {
		t.Fatalf("directory TTL %d for blocks of 3600 s", got)
	}
	if directoryTTL(0) != 0 {
		t.Fatal("blocks kept forever need a directory row kept forever")
	}
}
