package main

// Why capfleet falls short of an aim, from the benchmarks and from CPU profiles taken while writing
// hack/bench.sh (November 2026, this machine). Printed only under an aim the run did not meet; keep
// them in step with the code they describe.
const (
	whyRead = `reading costs capfleet a fixed start-up and then a little per record: every capfleet
subcommand starts in ~40 ms with ~55 MB resident (the one binary initialises client-go, controller-runtime
and gopacket before it reads its arguments; GODEBUG=inittrace=1 shows controller-runtime's webhook metrics
alone taking ~18 ms), which on the small input is about as long as reading it. Per record,
pcapfile.Reader.NextRecord (what pcap info calls) cuts records out of a window of the 64 KiB read buffer
peeked once for many of them and builds no time.Time: 30–60 ns a record here (BenchmarkReadPcapRecord;
Next, which returns the older 80-byte Packet with a time.Time, 80–130 ns), so at the small input's ~84
bytes a record one core reads 1.5–2.5 GB/s once started.`

	whyDecode = `text formatting dominates: a CPU profile of ` + "`pcap decode`" + ` on the small input puts
57 % of the time in writing the 17 fields as text (numbers and addresses), 20 % in decoding and 13 % in
reading, so 5 M packets/s per core (200 ns a packet) is out of reach while every field is printed, and
decoding alone (BenchmarkDecode) already costs 120–200 ns a packet here. The same formatting cost caps the ratio
to tcpdump. Against tshark the comparison is on the first
100,000 packets (tshark's 1–2 s of start-up loading its dissectors is part of what a user pays), and
tshark then needs 35–40 µs of CPU a packet: 500× would mean capfleet at 0.1 µs a packet, formatting included.`

	whyFlows = `per packet, ` + "`pcap flows`" + ` is reading (100–350 ns, BenchmarkReadPcap) plus
decoding (120–200 ns, BenchmarkDecode) plus the flow table (~125–165 ns, BenchmarkFlowTableAdd), about
0.35–0.6 µs in all on this machine; 3 M packets/s per core needs the three under 330 ns together. Live memory per active flow is measured separately (BenchmarkActiveFlowMemory: a table of
1,000,000 UDP flows, the heap it holds after a GC divided by the flows). The CICFlowMeter features (--features cic)
keep their accumulators in a side table, one block per flow: BenchmarkActiveFlowMemoryCIC is the same table with them
on, BenchmarkTableAddCIC (against BenchmarkTableAdd) their cost per packet.`

	whyReplayVeth = `capfleet reads and paces in one goroutine and sends in another, up to 256 frames per
sendmmsg() on an AF_PACKET socket, where tcpreplay sends one frame per sendto() from a single thread. What
is left is the kernel's per-frame send path, the same for both tools: a CPU profile of capfleet pcap replay
onto the veth puts about 80 % of its samples in sendmmsg, a third of that in the receiving namespace's stack
(on a veth it runs in the sender's context, as a softirq after each frame), and about 5 % in reading the
file. A PACKET_TX_RING, tried in a prototype, sent fewer frames per second onto the veth than sendmmsg.
The reader needs part of the second core: when other work keeps both cores busy, reader and sender share
one and the ratio falls.`

	whyReplayKafka = `capfleet's replay, like the sensor, builds its own record batches
(batchproducer): each frame is written from the reader's buffer straight into its partition's open
batch, a batch is compressed with liblz4 once, and sent as a raw produce request on a franz-go client,
idempotent (a producer id, sequence numbers per partition, one batch in flight per partition). The bare
producer is franz-go's own per-record path (a Record, a promise and a place in a batch for every record)
with records built before its clock starts; replay's figure includes reading the file, its start-up
and the pre-scan (a whole read of the file before the first packet, about 100 ns a packet together).
Both compress lz4 with liblz4 (internal/lz4frame, acceleration 4); the broker (a JVM on the same two
cores, "broker CPU ns/pkt") sets the pace of both.`

	// sensorMemory says what the sensor's resident MB are; the capture aim prints it whether or not
	// the RSS bound is met.
	sensorMemory = `what the sensor's resident memory is, at default settings: code, about 44 MB (the one
binary's text and data that start-up touches, file-backed: an idle sensor shows about 48 MB RssFile); the
ring, all resident from the moment it is mapped, sized from the interface's speed (16 ms of line rate, 8
to 64 MiB, in blocks of a fifth of it, 1 to 4 MiB: 20 MiB in 5 blocks on the benchmark's veth, which
reports 10 Gbit/s); and the Go heap, about 14 MB idle plus, under load, each ring's open batch per
partition (the records of up to 100 ms, at most 1 MiB each) and the compressed batches in flight, within
--buffer-mb and --buffer-packets.`

	whyCapture = `CPU: a profile of the sensor at this load (perf, whole process) puts about 30 % in lz4
(liblz4 at acceleration 4, about 150 ns a small record at best: --compression none saves it for about
twice the bytes on the wire and more broker CPU), about 40 % in the Go path of a packet (reading the
ring, the flow hash that picks the partition, writing the record into its batch: tcpdump's whole figure
is the ring-reading part of it) and most of the rest in the kernel switching the process's threads: the
sensor is idle between ring blocks, and each time an idle Go process makes a system call its runtime's
monitor goes back to waking every 20 µs for a while, a context switch each on this VM. Cut so far: the
sensor builds its own record batches (batchproducer: no franz-go record, promise or per-record
partitioning; was about 1,000 ns a packet of franz-go's own work), liblz4 instead of pure-Go lz4 (2.5x
less CPU a byte), a 100 ms linger and ring blocks of up to 4 MiB (fewer wake-ups), the ring's goroutine
waiting in Go's network poller rather than in poll(2). Packets in the topic: when publishing is slower
than tcpreplay offers, the backlog waits in the producer's buffer and the ring, and only what overflows
the ring is lost, counted as kernel drops.`

	whyE2E = `What it costs now: packets and flows are both stored in compressed blocks (one
Cassandra row per block, and a small index row per minute it touches, or per hour when its packets
spread over more than 4 minutes; flows per hour), so Cassandra's CPU per packet is what the block rows
cost spread over thousands of packets; the running totals of open flows are written every 10 s
(--flow-update-interval), closed flows with each commit. The process spends its CPU on the Kafka client
(fetching, decompressing the producer's batches, one record and one header per packet), zstd on the
blocks, decoding and the flow table. "small" (captures of different years concatenated) gives blocks
that spread over tens of hours, indexed by hour; its flows end as packet time jumps, so they are stored
during the drain. "small-live", stamped in time order as a sensor stamps its records, is what a live
sensor sends: its million packets span 2 s of packet time, so its flows are still open when the drain
ends and reach Cassandra as running totals (the "open flows' totals stored" figure). Cassandra runs
with its C2 compiler (hack/cassandra.sh CASSANDRA_JIT=full, which make bench uses when it starts
Cassandra) and its default periodic commit log: a C1-only test node costs several times the CPU per
request, and a single node that must not lose acknowledged writes in a crash needs the group commit
log, which answers each write after the next sync (docs/packet-storage.md). Commits come every second
(--commit-interval) once Cassandra acknowledged what is before them, so a paced lag of a second or two
of traffic, gone soon after the last send, is the pipeline keeping up.`

	whyFleet = `the operator's RSS as a process with 1,000 nodes heartbeating, and the writes an API server
actually receives, need the operator running against a control plane with 1,000 simulated nodes, which
make bench does not start. What is measured is the operator's side in-process: the heap its status path
holds per node and what one round of beats costs, and the controllers' test that figures are released at
most once per interval whatever the beat rate (the envtest suite also checks that an idle reconcile
writes nothing).`
)
