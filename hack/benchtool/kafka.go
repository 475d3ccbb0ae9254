package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/workload"
	"capfleet.dev/capfleet/packetrecord"
	"capfleet.dev/capfleet/pcapfile"
)

// produce is the ceiling capfleet's replay into Kafka is held against: the same records (encoded
// before the clock starts, so no file reading or encoding is timed), the same client settings as
// replay's Topic (acks from all in-sync replicas, idempotent, partitioned by flow, and the batching
// and compression of workload.PacketsProducerTuning: lz4, 20 ms linger, 1 MiB batches, which
// ceilingTool names), produced as fast as franz-go and the broker take them.
func produce(args []string) error {
	fs := pflag.NewFlagSet("produce", pflag.ContinueOnError)
	var kc kafkaconn.Config
	kc.AddFlags(fs)
	file := fs.String("file", "", "capture to produce")
	name := fs.String("topic", "", "topic (must exist)")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile of the timed part to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *name == "" {
		return errors.New("produce: --file and --topic are required")
	}
	recs, bytes, err := loadRecords(*file)
	if err != nil {
		return err
	}
	cl, err := kc.NewClient(append(workload.PacketsProducerTuning(kgo.Lz4Compression()),
		kgo.DefaultProduceTopic(*name),
		kgo.RecordPartitioner(packetrecord.Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(2*time.Minute),
		// The buffer of replay's Topic, so both wait on the broker alike.
		kgo.MaxBufferedRecords(50000),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka %v: %w", kc.Brokers, err)
	}
	var failed atomic.Uint64
	var first atomic.Value
	done := func(_ *kgo.Record, err error) {
		if err != nil && failed.Add(1) == 1 {
			first.Store(err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), cpuTime()
	for _, r := range recs {
		cl.Produce(ctx, r, done)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	secs, cpu := time.Since(start).Seconds(), cpuTime()-cpu0
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d records failed, first: %v", n, len(recs), first.Load())
	}
	fmt.Printf("packets=%d bytes=%d seconds=%.6f pps=%.0f cpu_ns_per_packet=%.0f\n", len(recs), bytes, secs,
		float64(len(recs))/secs, float64(cpu.Nanoseconds())/float64(len(recs)))
	return nil
}

// cpuTime is the CPU this process used so far: the producer's own, on the clock, without the
// loading before it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadRecords(path string) ([]*kgo.Record, int64, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	var recs []*kgo.Record
	var bytes int64
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs, bytes, nil
		}
		if err != nil {
			return nil, 0, err
		}
		m := packetrecord.Meta{Timestamp: p.Timestamp, Node: "bench", Interface: "replay", LinkType: p.LinkType, OrigLen: p.Length}
		recs = append(recs, packetrecord.Encode(m, p.Data))
		bytes += int64(len(p.Data))
	}
}

// group deletes a consumer group the end-to-end run's ` + "`capfleet process`" + ` joined.
func group(args []string) error {
	fs := pflag.NewFlagSet("group", pflag.ContinueOnError)
	var kc kafkaconn.Config
	kc.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "delete" {
		return errors.New("group delete NAME")
	}
	cl, err := kc.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteGroup(ctx, fs.Arg(1))
	if err == nil {
		err = resp.Err
	}
	return err
}

// topic creates, deletes or counts the records of (the sum of its partitions' end offsets) a topic.
func topic(args []string) error {
	fs := pflag.NewFlagSet("topic", pflag.ContinueOnError)
	var kc kafkaconn.Config
	kc.AddFlags(fs)
	partitions := fs.Int32("partitions", 3, "partitions of a created topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("topic create|delete|count NAME")
	}
	verb, name := fs.Arg(0), fs.Arg(1)
	cl, err := kc.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch verb {
	case "create":
		resp, err := adm.CreateTopic(ctx, *partitions, 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		return err
	case "delete":
		resp, err := adm.DeleteTopic(ctx, name)
		if err == nil {
			err = resp.Err
		}
		return err
	case "count":
		ends, err := adm.ListEndOffsets(ctx, name)
		if err != nil {
			return err
		}
		if err := ends.Error(); err != nil {
			return err
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		fmt.Println(n)
		return nil
	}
	return fmt.Errorf("topic: unknown verb %q", verb)
}
