package main

// Why capfleet falls short of an aim, from the benchmarks and from CPU profiles taken while writing
// hack/bench.sh (November 2026, this machine). Printed only under an aim the run did not meet; keep
// them in step with the code they describe.
const (
	whyRead = `reading costs capfleet per record, not per byte: pcapfile.Reader spends roughly 100–350 ns on
each record whatever its size (BenchmarkReadPcap: two bufio Peek/Discard round trips, one for the 16-byte
record header and one for the data, a time.Time built, and a ~100-byte Packet returned by value through
Next and nextPcap). At the mix's ~280 bytes a record that is about 1 GB/s; at the small input's ~84 bytes
a record it is a few hundred MB/s, and tcpdump -w /dev/null, which copies records without building
anything per packet, stays ahead there. Every capfleet subcommand also starts in ~40 ms with ~55 MB
resident: the one binary initialises client-go, controller-runtime and gopacket before it reads its
arguments, which weighs on short files.`

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

	whyReplayVeth = `both tools send one frame per write() on an AF_PACKET socket; on a veth most of the cost
of a packet is the kernel's (the receiving namespace's stack runs in the sender's context), so the
ratio moves with the load others put on the two cores from run to run.`

	whyReplayKafka = `the replay process is not what limits it: a CPU profile of BenchmarkReplayTopSpeedTopic
shows it busy ~40–60 % of one core (reading, packetrecord.Encode, franz-go's batching and snappy
compression), waiting the rest on acknowledgements (acks from all in-sync replicas, idempotent) from a
broker that shares the same two cores. The franz-go ceiling has every record encoded before its clock
starts, so each produce request leaves full (up to 1 MB per partition) and the broker spends less CPU per
record ("broker CPU ns/pkt"); the replay's records go out as they are read, in smaller batches. Even the
bare producer stays under 1 M records/s on this machine: the broker (a JVM on the same two cores) is the
limit here.`

	whyCapture = `the sensor's resident memory is mostly mapped, not heap: the capture ring as deployed
(--ring-blocks 64 × --ring-block-size-kb 1024 = 64 MiB) is filled by the kernel and counts as resident,
and the 58 MB binary (operator and every workload in one) keeps ~45 MB of code resident; an idle sensor
already shows ~120 MB, and under load the Go heap adds ~40–60 MB (the producer buffer, franz-go's
batches, lz4). 100 MB needs a smaller ring (fewer or smaller blocks, at the cost of burst tolerance) or a
binary without the operator's dependencies. Per packet the sensor also does what tcpdump -w /dev/null does
not: one Kafka record each (packetrecord.Encode, three allocations), lz4 batches and produce round trips;
the broker's own CPU per packet is in the table.`

	whyE2E = `every packet becomes a Cassandra row (and flows are stored too), and Kafka, Cassandra, the
pipeline and the replay share two cores with the other engineers' jobs: the "Cassandra CPU ns/pkt"
column shows where the time goes, so this figure describes this machine more than ` + "`capfleet process`" + `. Offsets are committed every 2 s
(--commit-interval), so a commit lag of up to about two seconds of the offered traffic is the pipeline
keeping up, not falling behind; a lag that grew with the run, or no catching up, would be.`

	whyFleet = `the operator's RSS as a process with 1,000 nodes heartbeating, and the writes an API server
actually receives, need the operator running against a control plane with 1,000 simulated nodes, which
make bench does not start. What is measured is the operator's side in-process: the heap its status path
holds per node and what one round of beats costs, and the controllers' test that figures are released at
most once per interval whatever the beat rate (the envtest suite also checks that an idle reconcile
writes nothing).`
)
