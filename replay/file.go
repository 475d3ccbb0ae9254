package replay

import (
	"fmt"
	"io"

	"capfleet.dev/capfleet/pcapfile"
)

// fileSource reads a capture file (pcap or pcapng, plain or gzip).
type fileSource struct {
	path string
	r    *pcapfile.Reader
}

// OpenFile is the Opener of a capture file on a local path: a plain file, or
// a ConfigMap, Secret or PersistentVolumeClaim mounted into the pod.
func OpenFile(path string) Opener {
	return func() (Source, error) {
		r, err := pcapfile.Open(path)
		if err != nil {
			return nil, fmt.Errorf("capture file: %w", err)
		}
		return &fileSource{path: path, r: r}, nil
	}
}

func (f *fileSource) Next() (Packet, error) {
	p, err := f.r.NextRecord()
	if err == io.EOF {
		return Packet{}, err
	}
	if err != nil {
		return Packet{}, fmt.Errorf("capture file %s: %w", f.path, err)
	}
	return Packet{
		Timestamp:     p.Time(),
		CaptureLength: len(p.Data),
		Length:        int(p.Length),
		LinkType:      p.LinkType,
		Data:          p.Data,
	}, nil
}

func (f *fileSource) Close() error { return f.r.Close() }
