package lz4frame

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/testenv"
)

// impls are the Appends under test: the build's own and, with cgo, the pierrec fallback too.
func impls() map[string]func(dst, src []byte) ([]byte, error) {
	m := map[string]func(dst, src []byte) ([]byte, error){"Append": Append}
	if UsesLiblz4 {
		m["pierrec"] = appendPure
	}
	return m
}

// inputs are the round trips' sources: empty, tiny, incompressible, larger than several blocks, and
// real packet records.
func inputs(t *testing.T) map[string][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 3*BlockSize+17)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("capfleet packet record 0123456789 "), (5*BlockSize)/34+3)
	var packets []byte
	for _, b := range batches(packetRecords(t, sharedCapture(t), 20_000), 1<<20) {
		packets = append(packets, b...)
		if len(packets) >= 3<<20 {
			break
		}
	}
	return map[string][]byte{
		"empty":             {},
		"one byte":          {'x'},
		"tiny":              []byte("hello, kafka"),
		"random":            random,
		"random one block":  random[:BlockSize],
		"repetitive blocks": text,
		"packets":           packets,
	}
}

// pierrecDecode is the oracle franz-go consumers use (franz-go decompresses lz4 with pierrec/lz4).
func pierrecDecode(frame []byte) ([]byte, error) {
	return io.ReadAll(lz4.NewReader(bytes.NewReader(frame)))
}

// cliDecode is the oracle of the reference implementation: the lz4 command (lz4 -d, Debian's lz4).
func cliDecode(t *testing.T, frame []byte) ([]byte, error) {
	t.Helper()
	path, err := exec.LookPath("lz4")
	if err != nil {
		testenv.Missing(t, "no lz4 command (hack/deps.sh installs it)")
	}
	cmd := exec.Command(path, "-d", "-c")
	cmd.Stdin = bytes.NewReader(frame)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, &cliError{err, errb.String()}
	}
	return out.Bytes(), nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + e.stderr }

func TestRoundTrip(t *testing.T) {
	in := inputs(t)
	for impl, f := range impls() {
		for name, src := range in {
			t.Run(impl+"/"+name, func(t *testing.T) {
				prefix := []byte("kept")
				out, err := f(append([]byte(nil), prefix...), src)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("dst's bytes not kept: %q", out[:min(len(out), 8)])
				}
				frame := out[len(prefix):]
				checkHeader(t, frame, len(src))
				for oracle, dec := range map[string]func([]byte) ([]byte, error){
					"pierrec": pierrecDecode,
					"lz4 -d":  func(b []byte) ([]byte, error) { return cliDecode(t, b) },
				} {
					back, err := dec(frame)
					if err != nil {
						t.Fatalf("%s: %v", oracle, err)
					}
					if !bytes.Equal(back, src) {
						t.Fatalf("%s: %d bytes back, want the %d in", oracle, len(back), len(src))
					}
				}
				// Incompressible data is stored raw (a block size with the high bit set): the frame
				// grows by its header, block sizes and end mark only.
				if name == "random" && len(frame) > len(src)+7+4*(len(src)/BlockSize+1)+4 {
					t.Errorf("random input: %d bytes framed from %d", len(frame), len(src))
				}
			})
		}
	}
}

// checkHeader checks the frame descriptor against what the LZ4 frame format specification asks of
// a Kafka frame: version 01, independent blocks, no block checksum, no content size or checksum, no
// dictionary, blocks of at most BlockSize.
func checkHeader(t *testing.T, frame []byte, srcLen int) {
	t.Helper()
	if len(frame) < 7 || binary.LittleEndian.Uint32(frame) != 0x184D2204 {
		t.Fatalf("no lz4 frame magic: % x", frame[:min(len(frame), 7)])
	}
	flg, bd := frame[4], frame[5]
	if version := flg >> 6; version != 1 {
		t.Errorf("FLG version %d", version)
	}
	if flg&(1<<5) == 0 {
		t.Errorf("FLG: blocks not independent")
	}
	if other := flg & 0b0001_1111; other != 0 {
		t.Errorf("FLG: block checksum, content size, content checksum, reserved or dictionary set: %08b", flg)
	}
	// liblz4 shrinks the block size to the smallest that holds the whole input (64 KiB the least).
	max := 64 << 10 << (2 * (int(bd>>4) - 4))
	if bd&0b1000_1111 != 0 || max < 64<<10 || max > BlockSize || max < min(srcLen, BlockSize) {
		t.Errorf("BD %08b: block max size %d for %d bytes, want at most %d", bd, max, srcLen, BlockSize)
	}
}

// Append must not crash, whatever src and dst: dst empty or not, with spare capacity or none, src
// of any length and mostly zeros with random bytes between.
func TestAppendAnyBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for impl, f := range impls() {
		for range 200 {
			n := rng.IntN(3 * BlockSize)
			src := make([]byte, n)
			for i := range src {
				if rng.IntN(4) == 0 {
					src[i] = byte(rng.Uint32())
				}
			}
			dst := make([]byte, rng.IntN(64), rng.IntN(64)+rng.IntN(2*n+100))
			head := append([]byte(nil), dst...)
			out, err := f(dst, src)
			if err != nil {
				t.Fatalf("%s: %d bytes: %v", impl, n, err)
			}
			if !bytes.Equal(out[:len(head)], head) {
				t.Fatalf("%s: dst's bytes changed", impl)
			}
			if back, err := pierrecDecode(out[len(head):]); err != nil || !bytes.Equal(back, src) {
				t.Fatalf("%s: %d bytes: round trip failed: %v", impl, n, err)
			}
		}
	}
}

// With room in dst, Append allocates nothing, on a batch of real packet records.
func TestAppendNoAllocs(t *testing.T) {
	src := batches(packetRecords(t, sharedCapture(t), 5_000), 1<<20)[0]
	dst := make([]byte, 0, 2*len(src)+1024)
	for impl, f := range impls() {
		// pierrec's pooled writer is made on first use; sync.Pool may also drop it at a GC, so it
		// is held warm by the first call here.
		if _, err := f(dst, src); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := f(dst[:0], src); err != nil {
				t.Fatal(err)
			}
		})
		if impl == "Append" && allocs != 0 {
			t.Errorf("%s: %.1f allocations a call with room in dst", impl, allocs)
		}
		t.Logf("%s: %.2f allocations a call", impl, allocs)
	}
}

// Compressor writes, through a bytes.Buffer as franz-go hands it, frames franz-go's own
// decompressor (a consumer's) reads back; a pooled buffer that has grown serves later batches
// without allocating.
func TestCompressor(t *testing.T) {
	var c kgo.Compressor = Compressor{}
	d := kgo.DefaultDecompressor()
	var buf bytes.Buffer
	for name, src := range inputs(t) {
		out, codec := c.Compress(&buf, src)
		if codec != kgo.CodecLz4 {
			t.Fatalf("%s: codec %v", name, codec)
		}
		back, err := d.Decompress(out, kgo.CodecLz4)
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%s: round trip failed: %v", name, err)
		}
	}
	src := batches(packetRecords(t, sharedCapture(t), 5_000), 1<<20)[0]
	c.Compress(&buf, src)
	if allocs := testing.AllocsPerRun(20, func() { c.Compress(&buf, src) }); allocs != 0 {
		t.Errorf("Compress: %.1f allocations a batch into a grown buffer", allocs)
	}
}
