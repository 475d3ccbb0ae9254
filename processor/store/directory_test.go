package store

import (
	"testing"
	"time"
)

// A minute's directory row is written once per directoryReuse, and lives that much longer than the
// blocks, so a block written while its row was being skipped never outlives the row.
func TestDirectoryRowsAreReusedAndOutliveTheirBlocks(t *testing.T) {
	var r recentRows
	k := minuteKey{"s", time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()}
	if r.fresh(k) {
		t.Fatal("a row never written is fresh")
	}
	r.written([]minuteKey{k})
	if !r.fresh(k) || r.fresh(minuteKey{"other", k.bucket}) {
		t.Fatal("the written row is not fresh, or another sensor's is")
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
