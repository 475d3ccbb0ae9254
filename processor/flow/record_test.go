package flow

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestTSVTimesAreExact: ts and duration print every microsecond, which a float64 of the epoch
// time in seconds cannot promise.
func TestTSVTimesAreExact(t *testing.T) {
	first := time.Unix(1300475167, 96535_000)
	r := Record{TS: first, LastTS: first.Add(61329 * time.Microsecond), HasDuration: true}
	cols := strings.Split(string(r.AppendTSV(nil)), "\t")
	if len(cols) != len(TSVFields) || cols[0] != "1300475167.096535" || cols[7] != "0.061329" {
		t.Fatalf("got %q", cols)
	}
}

// TestUIDIsDeterministicAndKeyed: a replayed flow keeps its uid (which makes stored flow writes
// idempotent), and every field of the key and the start time tell flows apart.
func TestUIDIsDeterministicAndKeyed(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	base := Flow{Key: Key{Orig: a, Resp: b, OrigPort: 1234, RespPort: 80, Proto: 6}, First: time.Unix(1700000000, 123)}
	u := base.UID()
	if again := base; again.UID() != u || !strings.HasPrefix(u, "C") {
		t.Fatalf("uid %q, again %q", u, again.UID())
	}
	for _, change := range []func(*Flow){
		func(f *Flow) { f.First = f.First.Add(1) },
		func(f *Flow) { f.VLAN[0] = 1 },
		func(f *Flow) { f.VLAN[1] = 1 },
		func(f *Flow) { f.Proto = 17 },
		func(f *Flow) { f.Key.Orig, f.Key.Resp = b, a },
		func(f *Flow) { f.OrigPort++ },
		func(f *Flow) { f.RespPort++ },
	} {
		other := base
		change(&other)
		if other.UID() == u {
			t.Errorf("uid %s does not depend on every key field: %+v", u, other.Key)
		}
	}
}
