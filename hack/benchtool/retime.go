package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/pflag"
)

// retime rewrites a pcap file's timestamps as a live sensor capturing its packets would stamp them:
// in file order, --step apart, from --start. Everything else (the bytes, the lengths, the link type) is
// kept; the output has nanosecond timestamps.
//
// Why: a packet record carries its capture time (the Metron convention capfleet follows), and the
// processor files packets by it: blocks span at most 10 s of packet time and are indexed per minute.
// The bench's small input concatenates captures from different years (194 of the corpus, of the
// 1,542 the mix takes) and repeats them, so its timestamps jump across years and the packets of one Kafka partition spread over many index minutes, which a
// sensor's own records, in time order, never do.
func retime(args []string) error {
	fs := pflag.NewFlagSet("retime", pflag.ContinueOnError)
	start := fs.String("start", "", "first packet's time, RFC 3339 (default: an hour before now)")
	step := fs.Duration("step", 2*time.Microsecond, "time between consecutive packets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("usage: benchtool retime [--start T] [--step D] IN OUT")
	}
	t0 := time.Now().Add(-time.Hour)
	if *start != "" {
		t, err := time.Parse(time.RFC3339Nano, *start)
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		t0 = t
	}
	in, out := fs.Arg(0), fs.Arg(1)
	n, err := retimeFile(in, out+".tmp", t0, *step)
	if err != nil {
		os.Remove(out + ".tmp")
		return err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "retimed %d packets of %s: %s to %s, %s apart\n", n, in,
		t0.UTC().Format(time.RFC3339Nano), t0.Add(time.Duration(n-1)**step).UTC().Format(time.RFC3339Nano), *step)
	return nil
}

func retimeFile(in, out string, t0 time.Time, step time.Duration) (int, error) {
	f, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", in, err)
	}
	o, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer o.Close()
	bw := bufio.NewWriterSize(o, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		return 0, err
	}
	n := 0
	for ; ; n++ {
		data, ci, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("%s: packet %d: %w", in, n+1, err)
		}
		ci.Timestamp = t0.Add(time.Duration(n) * step)
		if err := w.WritePacket(ci, data); err != nil {
			return n, fmt.Errorf("%s: packet %d: %w", out, n+1, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, err
	}
	return n, o.Close()
}
