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

	whyReplayKafka = `capfleet's replay does per record, on the clock, what the bare producer does before
its clock starts: reading the file and building the record. At top speed it does both in the goroutine
that produces, each frame encoded straight from the reader's buffer into its record (no copy into a
batch), the records held in a ring of replay's own (replay/records.go: one writer, slots and bytes
reused in the order they were produced, so the producing core and the promise's core share nothing per
record but the record itself; packetrecord.Pool, made for the sensor's several writers, has both cores
wrote its counters, a lock and a free list on every record: without it replay's CPU fell from about
1,900 to 1,350 ns a packet, side by side on this machine while it was loaded; the pool has since
dropped the per-record lock and counters), and one reading of the
clock for 64 records' timestamps where franz-go reads it for each. Replay's CPU figure also holds its start-up and the pre-scan, a whole read of the file
before the first packet is sent (about 100 ns a packet together). Both use the same tuning
(workload.PacketsProducerTuning: lz4 with 256 KiB frame blocks, 20 ms linger, 1 MiB batches), and the
broker (a JVM on the same two cores, "broker CPU ns/pkt") sets the pace of both. franz-go's own
per-record work (partitioning, batching, lz4, the promise) is most of a record's CPU: see
BenchmarkPublish in sensor/publish_test.go.`

	// sensorMemory says what the sensor's resident MB are; the capture aim prints it whether or not
	// the RSS bound is met.
	sensorMemory = `what the sensor's resident memory is, at default settings: code, about 44 MB (the one
binary's text and data that start-up touches, file-backed: an idle sensor with a 4 MiB ring shows 48 MB
RssFile and 14 MB RssAnon); the ring, all resident from the moment it is mapped, sized from the
interface's speed (16 ms of line rate, 8 to 64 MiB: 20 MiB on the benchmark's veth, which reports
10 Gbit/s; it was a fixed 64 MiB); and the Go heap, about 14 MB idle plus, under load, the record pool (at
most --buffer-packets 50,000 records of about 250 B each, their bytes in 1 MiB slabs), franz-go's batches
and lz4's 256 KiB blocks.`

	whyCapture = `CPU: reading the ring is tens of ns a packet (tcpdump's figure is the same work); the
rest is publishing. Cut so far (BenchmarkPublishPaced in sensor/publish_test.go, at a live sensor's
pace): the ring's goroutine waits for a block in Go's network poller, not in poll(2) (a goroutine
blocked in a system call loses its P to the runtime's monitor, which then wakes every 20 µs for a
while: in this VM a fifth of the sensor's CPU); the record pool hands out entries in order from chunks
and keeps its counts apart from the promise's (no lock or shared counter passed between cores per
record); a 20 ms linger (fewer, larger batches). What is left is franz-go's own per-record work
(partitioning, appending to a batch, the promise: the sensor now costs about what franz-go alone does
producing records encoded beforehand, "franz-go alone" in BenchmarkPublishPaced) and lz4, about 300 ns
a small record (--compression none saves it, and some broker CPU, for about twice the bytes; snappy
saves a third of it but costs the broker about twice lz4's). 600 ns needs franz-go's per-record path
gone: fewer records (several packets a record would break the one-record-per-packet format) or record
batches the sensor builds itself. Packets in the topic: when publishing is slower than tcpreplay
offers, the backlog waits in the record pool and the ring (capture no longer sheds while Kafka makes
progress), and only what overflows the ring is lost, counted as kernel drops.`

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
