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
1,000,000 UDP flows, the heap it holds after a GC divided by the flows).`

	whyReplayVeth = `capfleet reads and paces in one goroutine and sends in another, up to 256 frames per
sendmmsg() on an AF_PACKET socket, where tcpreplay sends one frame per sendto() from a single thread. What
is left is the kernel's per-frame send path, the same for both tools: a CPU profile of capfleet pcap replay
onto the veth puts about 80 % of its samples in sendmmsg, a third of that in the receiving namespace's stack
(on a veth it runs in the sender's context, as a softirq after each frame), and about 5 % in reading the
file. A PACKET_TX_RING, tried in a prototype, sent fewer frames per second onto the veth than sendmmsg.
The reader needs part of the second core: when other work keeps both cores busy, reader and sender share
one and the ratio falls.`

	whyReplayKafka = `capfleet's replay does per record, on the clock, what the franz-go ceiling does before
its clock starts: reading the file, building the record (packetrecord.Encode, three allocations), pacing
and accounting; franz-go's batching and snappy compression both do. That is about 2.3 µs of CPU a record
here ("CPU s" over the packets): a whole core at 0.4 M records/s on a machine of two, where the broker (a
JVM) takes about 1 µs a record besides ("broker CPU ns/pkt"). The bare producer, with every record
prepared in advance, got 0.9 M records/s (up to 1.1 M) in a quieter full run and less when the machine was
busier, so on this machine 1 M/s is at the limit of the broker and the client even without capfleet's own
work; it also holds every record in memory (its RSS), which a replay of a large capture cannot.`

	whyCapture = `the sensor's resident memory is mostly mapped, not heap: the capture ring as deployed
(--ring-blocks 64 × --ring-block-size-kb 1024 = 64 MiB) is filled by the kernel and counts as resident,
and the 58 MB binary (operator and every workload in one) keeps ~45 MB of code resident; an idle sensor
already shows ~120 MB, and under load the Go heap adds ~40–60 MB (the producer buffer, franz-go's
batches, lz4). 100 MB needs a smaller ring (fewer or smaller blocks, at the cost of burst tolerance) or a
binary without the operator's dependencies. Per packet the sensor also does what tcpdump -w /dev/null does
not: one Kafka record each (packetrecord.Encode, three allocations), lz4 batches and produce round trips;
the broker's own CPU per packet is in the table.`

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
