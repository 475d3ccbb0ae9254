package decode_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// FuzzDecode feeds arbitrary frames under each supported link type (and some others) to the
// decoder, the field formatters and the flow table. Seeds are the first packets of every capture
// in tcpdump's test suite; crashers found are kept in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	if dir, err := corpusDir(); err == nil {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			for _, fr := range readFrames(f, filepath.Join(dir, e.Name()), 4) {
				f.Add(fr.data, fr.linkType)
			}
		}
	}
	f.Add([]byte{}, uint32(1))
	fields, err := decode.LookupFields(decode.FieldNames())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, linkType uint32) {
		d := decode.NewDecoder()
		var p decode.Packet
		r := d.Decode(data, decode.LinkType(linkType), time.Unix(1, 0), len(data), &p)
		if r >= decode.NumReasons {
			t.Fatalf("reason %d", r)
		}
		if int(p.NIP) > decode.MaxIP {
			t.Fatalf("NIP %d", p.NIP)
		}
		var buf []byte
		for _, fl := range fields {
			buf, _ = fl.Append(buf[:0], 1, &p)
		}
		tab := flow.New(flow.Config{MaxFlows: 2})
		tab.Add(&p)
		tab.Add(&p)
		tab.Flush()
	})
}

// corpusDir is tcpdump's capture folder when the shared corpus is present; fuzzing works
// without it, from the committed seeds.
func corpusDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
	p := filepath.Join(filepath.Dir(dir), "shared", "pcaps", "tcpdump")
	_, err = os.Stat(p)
	return p, err
}

// TestAbsentFieldsAppendNothing: a field the packet lacks must leave the output untouched, or
// tsv columns would show values for headers that are not there.
func TestAbsentFieldsAppendNothing(t *testing.T) {
	fields, err := decode.LookupFields(decode.FieldNames())
	if err != nil {
		t.Fatal(err)
	}
	var p decode.Packet
	decode.NewDecoder().Decode([]byte{0x45}, decode.LinkTypeEthernet, time.Unix(0, 0), 1, &p)
	for _, f := range fields {
		out, ok := f.Append([]byte("x"), 1, &p)
		if !ok && string(out) != "x" {
			t.Errorf("%s: absent but appended %q", f.Name, out[1:])
		}
	}
}
