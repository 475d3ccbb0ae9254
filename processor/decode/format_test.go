package decode

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// The formatters of the default fields write their text in place; these hold them to the
// library functions, and the code, they stand in for, byte for byte.

func TestAppendUintIsStrconv(t *testing.T) {
	vals := []uint64{math.MaxUint64, math.MaxUint64 - 1, 1<<63 - 1, 1 << 63, 1<<32 - 1, 1 << 32}
	for p := uint64(1); p <= 1e19; p *= 10 {
		vals = append(vals, p-1, p, p+1)
		if p == 1e19 {
			break
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		vals = append(vals, r.Uint64()>>r.UintN(64))
	}
	for v := range uint64(100000) {
		vals = append(vals, v)
	}
	for _, v := range vals {
		prefix := []byte("x\t")
		if got, want := string(appendUint(prefix, v)), string(strconv.AppendUint(prefix, v, 10)); got != want {
			t.Fatalf("appendUint(%d) = %q, want %q", v, got, want)
		}
		if got, want := string(appendInt(nil, int64(v))), strconv.FormatInt(int64(v), 10); got != want {
			t.Fatalf("appendInt(%d) = %q, want %q", int64(v), got, want)
		}
	}
}

// oldEpoch is frame.time_epoch as it was formatted with strconv.
func oldEpoch(ts time.Time) string {
	ns := ts.UnixNano()
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	dst := strconv.AppendInt(nil, sec, 10)
	dst = append(dst, '.')
	var b [9]byte
	for i := 8; i >= 0; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	return string(append(dst, b[:]...))
}

func TestAppendEpoch(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Unix(-1, 0), time.Unix(-1, 999999999), time.Unix(-12345, 5),
		time.Unix(34, 583760000), time.Unix(1413306485, 708342000), time.Unix(1<<33, 999999999),
		time.Unix(math.MaxInt64/int64(1e9), 854775807), time.Unix(math.MinInt64/int64(1e9), -854775808),
		time.Date(3000, 1, 1, 0, 0, 0, 1, time.UTC), // beyond UnixNano's range: its value, whatever it is
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		times = append(times, time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9)))
	}
	for _, ts := range times {
		p := &Packet{Timestamp: ts}
		if got, want := string(appendEpoch(nil, p)), oldEpoch(ts); got != want {
			t.Fatalf("appendEpoch(%v) = %q, want %q", ts, got, want)
		}
	}
}

func TestAppendAddrIsNetip(t *testing.T) {
	addrs := []netip.Addr{{}, netip.MustParseAddr("::ffff:1.2.3.4"), netip.MustParseAddr("fe80::1%eth0"), netip.IPv6Unspecified()}
	for _, o := range []byte{0, 1, 9, 10, 11, 99, 100, 101, 199, 200, 249, 250, 255} {
		addrs = append(addrs, netip.AddrFrom4([4]byte{o, o, o, o}), netip.AddrFrom4([4]byte{o, 0, 255, 10}))
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		v := r.Uint32()
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
	}
	for _, a := range addrs {
		if got, want := string(appendAddr([]byte("x"), a)), string(a.AppendTo([]byte("x"))); got != want {
			t.Fatalf("appendAddr(%v) = %q, want %q", a, got, want)
		}
	}
}

func TestAppendMACAndHex(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		m := [6]byte{b, b ^ 0xff, b >> 4, b << 4, 0, 0xff}
		want := ""
		for j, x := range m {
			if j > 0 {
				want += ":"
			}
			want += string(hexDigits[x>>4]) + string(hexDigits[x&15])
		}
		if got := string(appendMAC(nil, &m)); got != want {
			t.Fatalf("appendMAC(% x) = %q, want %q", m, got, want)
		}
	}
	for _, c := range []struct {
		v     uint64
		width int
		want  string
	}{{0, 4, "0x0000"}, {0x18, 4, "0x0018"}, {0xfff, 4, "0x0fff"}, {0xffff, 4, "0xffff"}, {0x10000, 4, "0x10000"}, {0xab, 2, "0xab"}, {0, 8, "0x00000000"}} {
		if got := string(appendHex(nil, c.v, c.width)); got != c.want {
			t.Errorf("appendHex(%#x, %d) = %q, want %q", c.v, c.width, got, c.want)
		}
	}
}
