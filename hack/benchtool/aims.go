package main

import (
	"fmt"
	"io"
	"strings"
)

// One of capfleet's performance aims (what, target), checked against this run's medians. why is printed when it is not met: what
// the measurements and the code say holds capfleet back, so the page explains a shortfall instead of
// only stating it.
type aim struct {
	what, target string
	check        func(r *results) (verdict []string, met bool, measured bool)
	why          string
	// noBound marks an aim without a figure to meet: the run reports, it does not judge.
	noBound bool
	// partly says what of the aim this run does not measure, and where it is checked instead.
	partly string
}

// checker collects the verdict lines of one aim.
type checker struct {
	lines         []string
	met, measured bool
}

func newChecker() *checker { return &checker{met: true} }

// atLeast records a figure against a floor (or, with atMost, a ceiling).
func (c *checker) compare(label string, v float64, ok bool, bound float64, atMost bool, unit string) {
	if !ok {
		return
	}
	c.measured = true
	pass := v >= bound
	op := "≥"
	if atMost {
		pass, op = v <= bound, "≤"
	}
	mark := "yes"
	if !pass {
		mark, c.met = "**no**", false
	}
	c.lines = append(c.lines, fmt.Sprintf("%s: %s%s (aim %s %s%s): %s", label, num(v), unit, op, num(bound), unit, mark))
}

func (c *checker) note(s string) { c.lines = append(c.lines, s) }

func (c *checker) result() ([]string, bool, bool) { return c.lines, c.met && c.measured, c.measured }

// ratio is capfleet's median over a reference's on the section's headline figure.
func ratio(r *results, sec, kase, ref string) (float64, bool) {
	h := sectionInfo[sec].headline
	a, ok1 := r.med(sec, kase, r.capfleetTool(sec, kase), h)
	b, ok2 := r.med(sec, kase, ref, h)
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return a / b, true
}

var aims = []aim{
	{
		what: "read a capture file", target: "≥ 1 GB/s, ≥ 1× tcpdump -r -w /dev/null",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			for _, k := range r.cases["read"] {
				v, ok := r.med("read", k, "capfleet pcap info", "MB/s")
				c.compare("`capfleet pcap info`, "+k, v, ok, 1000, false, " MB/s")
				v, ok = ratio(r, "read", k, "tcpdump -r -w /dev/null")
				c.compare("vs tcpdump -r -w /dev/null, "+k, v, ok, 1, false, "×")
				if v, ok := r.med("read", k, "capfleet pcap info", "MB/s per core"); ok {
					c.note(fmt.Sprintf("per CPU second, %s: %s MB/s (what one uncontended core would read)", k, num(v)))
				}
			}
			return c.result()
		},
		why: whyRead,
	},
	{
		what: "decode to fields", target: "≥ 15× tcpdump, ≥ 500× tshark, ≥ 5 M packets/s per core",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			for _, k := range r.cases["decode"] {
				v, ok := ratio(r, "decode", k, "tcpdump -nn -r")
				c.compare("vs tcpdump, "+k, v, ok, 15, false, "×")
				v, ok = ratio(r, "decode", k, "tshark -T fields")
				c.compare("vs tshark, "+k, v, ok, 500, false, "×")
				v, ok = r.med("decode", k, "capfleet pcap decode", "Mpkt/s per core")
				c.compare("per core, "+k, v, ok, 5, false, " M packets/s")
			}
			return c.result()
		},
		why: whyDecode,
	},
	{
		what: "display filter (-Y)", target: "≥ 500× tshark -Y; evaluation ≤ 150 ns and no allocation a packet",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			for _, k := range r.cases["filter"] {
				v, ok := ratio(r, "filter", k, "tshark -Y")
				c.compare("vs tshark -Y, "+k, v, ok, 500, false, "×")
			}
			v, ok := r.med("go", "processor/displayfilter", "MatchMix", "ns/op")
			c.compare("one filter on one decoded packet, BenchmarkMatchMix", v, ok, 150, true, " ns")
			v, ok = r.med("go", "processor/displayfilter", "MatchMix", "allocs/op")
			c.compare("allocations a packet, BenchmarkMatchMix", v, ok, 0, true, "")
			return c.result()
		},
		why: "the -Y run pays for decoding (BenchmarkDecode) and reading as well as the evaluation; against tshark -Y the comparison is on the first packets of each input, tshark's start-up included, as for decode.",
	},
	{
		what: "flows from a file", target: "≥ 3 M packets/s per core; ≤ 300 B per active flow at 1 M flows",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			for _, k := range r.cases["flows"] {
				v, ok := r.med("flows", k, "capfleet pcap flows", "Mpkt/s per core")
				c.compare("per core, "+k, v, ok, 3, false, " M packets/s")
			}
			v, ok := r.med("go", "processor/flow", "ActiveFlowMemory", "B/flow")
			c.compare("live heap per active flow at 1 M flows (BenchmarkActiveFlowMemory)", v, ok, 300, true, " B")
			// The CICFlowMeter features are optional and have no aim of their own: their cost is said.
			if v, ok := r.med("go", "processor/flow", "ActiveFlowMemoryCIC", "B/flow"); ok {
				c.note(fmt.Sprintf("live heap per active flow with CIC features (BenchmarkActiveFlowMemoryCIC): %s B", num(v)))
			}
			if v, ok := r.med("go", "processor/flow", "TableAdd", "ns/op"); ok {
				c.note(fmt.Sprintf("flow table add (BenchmarkTableAdd): %s ns a packet", num(v)))
			}
			if v, ok := r.med("go", "processor/flow", "TableAddCIC", "ns/op"); ok {
				c.note(fmt.Sprintf("flow table add with CIC features (BenchmarkTableAddCIC): %s ns a packet", num(v)))
			}
			return c.result()
		},
		why: whyFlows,
	},
	{
		what: "replay onto a veth", target: "≥ 1.2× tcpreplay's packets/s, same packets",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			for _, k := range r.cases["replay-veth"] {
				v, ok := ratio(r, "replay-veth", k, "tcpreplay --topspeed")
				c.compare("vs tcpreplay, "+k, v, ok, 1.2, false, "×")
				const self, ref = "capfleet pcap replay --interface", "tcpreplay --topspeed"
				a, ok1 := r.med("replay-veth", k, self, "received on peer")
				b, ok2 := r.med("replay-veth", k, ref, "received on peer")
				p, ok3 := r.med("replay-veth", k, self, "packets in file")
				fa, _ := r.med("replay-veth", k, self, "failed")
				fb, _ := r.med("replay-veth", k, ref, "failed")
				if ok1 && ok2 && ok3 {
					same := a == b && fa == fb
					if !same {
						c.met = false
					}
					c.note(fmt.Sprintf("packets received on the peer, %s: capfleet %s, tcpreplay %s of %s in the file (failed to send: %s and %s): %s",
						k, num(a), num(b), num(p), num(fa), num(fb), map[bool]string{true: "the same", false: "**differ**"}[same]))
				}
			}
			return c.result()
		},
		why: whyReplayVeth,
	},
	{
		what: "replay into Kafka", target: "≥ 0.8× the tuned bare franz-go producer on the same broker",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			const self = "capfleet pcap replay --to-topic"
			for _, k := range r.cases["replay-kafka"] {
				v, ok := ratio(r, "replay-kafka", k, ceilingTool)
				c.compare("against "+ceilingTool+", "+k, v, ok, 0.8, false, "×")
				if v, ok := r.med("replay-kafka", k, self, "Mpkt/s"); ok {
					c.note(fmt.Sprintf("`%s`, %s: %s M packets/s", self, k, num(v)))
				}
				a, ok1 := r.med("replay-kafka", k, self, "CPU ns/pkt")
				b, ok2 := r.med("replay-kafka", k, ceilingTool, "CPU ns/pkt")
				if ok1 && ok2 {
					c.note(fmt.Sprintf("CPU per packet, %s: replay %s ns (reading the file and start-up included), bare producer %s ns (producing only)", k, num(a), num(b)))
				}
			}
			return c.result()
		},
		why: whyReplayKafka,
	},
	{
		what: "capture at line rate", target: "in the topic = sent (0 drops of any cause) and captured = sent at tcpreplay's top speed; sensor ≤ 600 ns CPU a packet; RSS ≤ 100 MB",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			const sensor = "capfleet sensor → Kafka"
			for _, k := range r.cases["capture"] {
				v, ok := r.med("capture", k, sensor, "in topic %")
				c.compare("packets in the topic of sent (the broker's end offsets), "+k, v, ok, 100, false, " %")
				v, ok = r.med("capture", k, sensor, "captured %")
				c.compare("sensor captured of sent, "+k, v, ok, 100, false, " %")
				if d, ok := r.med("capture", k, sensor, "interface drops"); ok && d > 0 && v >= 100 {
					c.note(fmt.Sprintf("the sensor's interface drops (%s, the receiving veth's rx_dropped) are frames the namespace's own stack discarded after they were captured, not capture losses: captured = sent", num(d)))
				}
				for _, d := range []string{"kernel drops", "buffer drops", "produce failures"} {
					v, ok = r.med("capture", k, sensor, d)
					c.compare("sensor "+d+", "+k, v, ok, 0, true, "")
				}
				v, ok = r.med("capture", k, sensor, "peak RSS MB")
				c.compare("sensor peak RSS, "+k, v, ok, 100, true, " MB")
				if ok {
					c.note(oneLine(sensorMemory))
				}
				v, ok = r.med("capture", k, sensor, "CPU ns/pkt")
				c.compare("sensor CPU a packet (capture and publishing), "+k, v, ok, 600, true, " ns")
				if t, ok := r.med("capture", k, "tcpdump -i -w /dev/null", "CPU ns/pkt"); ok {
					c.note(fmt.Sprintf("tcpdump -w /dev/null in the same run: %s ns a packet", num(t)))
				}
				if t, ok := r.med("replay-kafka", "small", ceilingTool, "CPU ns/pkt"); ok {
					c.note(fmt.Sprintf("%s in the same run, producing records prepared in advance: %s ns a record (the floor of publishing with this client)", ceilingTool, num(t)))
				}
				if d, ok := r.stat("capture", k, "tcpdump -i -w /dev/null", "kernel drops"); ok && d.max > 0 {
					c.note(fmt.Sprintf("tcpdump, at tcpreplay's top speed too, lost up to %s packets to kernel drops in a run (libpcap's 2 MiB default buffer)", num(d.max)))
				}
			}
			return c.result()
		},
		why: whyCapture,
	},
	{
		what: "end to end", target: "≥ 300,000 packets/s stored and committed; process and Cassandra CPU ≤ 2,000 ns/pkt each; stored ÷ pcap ≤ 0.8 on the mix",
		check: checkE2E,
		why:   whyE2E,
	},
	{
		what: "hot paths allocate nothing per packet", target: "reader, decoder, flow table, record encoding, the sensor's capture-to-produce path",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			// Packets per op of the whole-capture benchmarks: zeek/echo-connections.pcap.
			const echoPackets = 82582
			for _, b := range []struct {
				pkg, name, what string
				perOp           float64
			}{
				{"pcapfile", "ReadPcap", "reader (per packet)", echoPackets},
				{"processor/decode", "Decode", "decoder (per packet)", echoPackets},
				{"processor/pipeline", "FlowTableAdd", "flow table add (per packet)", 1},
				{"processor/flow", "TableAddCIC", "flow table add with CIC features (per packet)", 1},
			} {
				v, ok := r.med("go", b.pkg, b.name, "allocs/op")
				c.compare(b.what+", Benchmark"+b.name, v/b.perOp, ok, 0.001, true, " allocations")
			}
			if v, ok := r.med("go", "packetrecord", "Encode", "allocs/op"); ok {
				c.note(fmt.Sprintf("record encoding without a pool, BenchmarkEncode: %s allocations a record (the buffer, the headers, the *kgo.Record)", num(v)))
			}
			v, ok := r.med("go", "packetrecord", "AppendBatchRecord", "allocs/op")
			c.compare("a record written into its batch, as the sensor does, BenchmarkAppendBatchRecord", v, ok, 0, true, " allocations")
			// Every goroutine's allocations over the packets, those per batch and request included.
			v, ok = r.med("go", "sensor", "Publish/default", "mallocs/pkt")
			c.compare("the sensor's capture-to-produce path into the broker (BenchmarkPublish, all goroutines, per packet)", v, ok, 0.02, true, " allocations")
			if a, ok := r.med("go", "sensor", "Publish/default", "cpu-ns/pkt"); ok {
				b, _ := r.med("go", "sensor", "Publish/franz-go", "cpu-ns/pkt")
				ka, _ := r.med("go", "sensor", "Publish/default", "broker-cpu-ns/pkt")
				kb, _ := r.med("go", "sensor", "Publish/franz-go", "broker-cpu-ns/pkt")
				c.note(fmt.Sprintf("publishing CPU a packet, BenchmarkPublish: %s ns through the sensor's own batches, %s ns through franz-go's per-record path (a record allocated a packet); the broker %s and %s ns besides", num(a), num(b), num(ka), num(kb)))
			}
			return c.result()
		},
		why: "an allocation per packet appeared on a path that had none; run the named benchmark with -memprofile.",
	},
	{
		what: "status at fleet scale", target: "≤ 1 status write per resource per interval; operator RSS ≤ 200 MB",
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			if v, ok := r.med("go", "heartbeat", "ObserveFleet", "ns/op"); ok {
				c.measured = true
				c.note(fmt.Sprintf("one heartbeat into the Aggregator of 1,000 nodes: %s ns (1,000 nodes every 5 s are 200 beats/s: %.4f%% of a core)", num(v), v*200/1e9*100))
			}
			if v, ok := r.med("go", "heartbeat", "SummaryFleet", "ns/op"); ok {
				c.note(fmt.Sprintf("one status summary of a 1,000-node resource: %s µs", num(v/1000)))
			}
			if v, ok := r.med("fleet", "1,000 nodes", "TestFiguresAtMostOncePerInterval", "passed"); ok {
				c.measured = true
				verdict := "passed: however many beats arrive, a resource's figures are released once per interval"
				if v != 1 {
					verdict, c.met = "**failed**", false
				}
				c.note("status writes per resource per interval, controllers' TestFiguresAtMostOncePerInterval (5 rounds of 1,000 nodes, 100 wake-ups each): " + verdict)
			}
			if v, ok := r.med("go", "controllers", "FleetStatus", "heap-B/node"); ok {
				round, _ := r.med("go", "controllers", "FleetStatus", "ns/op")
				c.note(fmt.Sprintf("one round of 1,000 beats plus the status derived from them (BenchmarkFleetStatus): %s ms; heap the operator holds for them: %s B a node, %s MB for 1,000 nodes",
					num(round/1e6), num(v), num(v*1000/1e6)))
			}
			if v, ok := r.med("go", "heartbeat", "StatePerPod", "bytes/pod"); ok {
				c.note(fmt.Sprintf("the Aggregator's state once every window is full (BenchmarkStatePerPod): %s B a pod", num(v)))
			}
			return c.result()
		},
		partly: whyFleet,
	},
	{
		what: "analyst queries over a day", target: "query top and query graph over a day of stored flows (reported, no bound)",
		noBound: true,
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			flows, ok := r.med("go", "query", "QueryDay/top", "flows")
			if !ok {
				return c.result()
			}
			c.measured = true
			rate := flows / 86400
			for _, q := range []struct{ bench, what string }{
				{"QueryDay/top", "`query top --group host --by bytes` (every flow of the day read and summed)"},
				{"QueryDay/graph-flows", "`query graph` from the flows"},
				{"QueryDay/graph-rollups", "`query graph` from the per-minute edge rollups (what a range of an hour or more reads)"},
			} {
				if s, ok := r.stat("go", "query", q.bench, "s/query"); ok {
					c.note(fmt.Sprintf("%s over %s flows (%s flows/s for 24 h): %s s (%s–%s)", q.what, num(flows), num(rate), num(s.med), num(s.min), num(s.max)))
				}
			}
			if rows, ok := r.med("go", "query", "QueryDay/graph-rollups", "rollup-rows"); ok {
				c.note(fmt.Sprintf("edge rollup rows of that day: %s (%s flows a row)", num(rows), num(flows/rows)))
			}
			return c.result()
		},
	},
	{
		what: "NetFlow/IPFIX collector", target: "records/s received against nfcapd on the same stream (reported, no bound)",
		noBound: true,
		check: func(r *results) ([]string, bool, bool) {
			c := newChecker()
			cf, ok1 := r.med("go", "netflow/nfcmd", "CollectVsNfcapd/capfleet", "records/s")
			nf, ok2 := r.med("go", "netflow/nfcmd", "CollectVsNfcapd/nfcapd", "records/s")
			if !ok1 || !ok2 || nf == 0 {
				return c.result()
			}
			c.measured = true
			lc, _ := r.med("go", "netflow/nfcmd", "CollectVsNfcapd/capfleet", "%lost")
			ln, _ := r.med("go", "netflow/nfcmd", "CollectVsNfcapd/nfcapd", "%lost")
			c.note(fmt.Sprintf("one IPFIX stream sent at top speed over loopback (BenchmarkCollectVsNfcapd): `capfleet collect` received %s records/s (%s %% lost), nfcapd %s records/s (%s %% lost): %s×",
				num(cf), num(lc), num(nf), num(ln), num(cf/nf)))
			return c.result()
		},
	},
}

func writeAims(w io.Writer, r *results) {
	fmt.Fprintln(w, "## Performance aims")
	fmt.Fprintln(w)
	for _, a := range aims {
		lines, met, measured := a.check(r)
		verdict := "**met**"
		switch {
		case !measured:
			verdict = "**not measured in this run**"
		case a.partly != "":
			verdict = "**partly measured**"
		case a.noBound:
			verdict = "measured (no figure set to meet)"
		case !met:
			verdict = "**not met**"
		}
		fmt.Fprintf(w, "- **%s** (%s): %s\n", a.what, a.target, verdict)
		for _, l := range lines {
			fmt.Fprintf(w, "  - %s\n", l)
		}
		switch {
		case measured && a.partly != "":
			fmt.Fprintf(w, "  - not measured here: %s\n", oneLine(a.partly))
		case measured && a.noBound && a.why != "":
			fmt.Fprintf(w, "  - note: %s\n", oneLine(a.why))
		case measured && !met && a.why != "":
			fmt.Fprintf(w, "  - why: %s\n", oneLine(a.why))
		}
	}
	fmt.Fprintln(w)
}

// oneLine keeps a paragraph inside its markdown list item.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// e2eTool and e2eMixTool are hack/bench.sh's names for the end-to-end runs: packets and flows stored
// (the small inputs), packets only (the mix).
const (
	// ceilingTool is hack/bench.sh's $CEILING: the bare producer, tuned as capfleet's.
	ceilingTool = "franz-go producer (lz4, 20 ms linger, 1 MiB batches)"
	e2eTool     = "replay → Kafka → capfleet process → Cassandra"
	e2eMixTool  = "replay → Kafka → capfleet process (packets only) → Cassandra"
	sensorTool  = "capfleet sensor → Kafka"
)

// checkE2E holds the runs with packets and flows stored (small, small-live) to the rate and CPU
// bounds, and the mix (packets only) to the storage bound; the rest is reported.
func checkE2E(r *results) ([]string, bool, bool) {
	c := newChecker()
	for _, k := range r.cases["e2e"] {
		for _, t := range r.tools[[2]string{"e2e", k}] {
			s, ok := r.stat("e2e", k, t, "Mpkt/s")
			if !ok {
				continue
			}
			bounded := t == e2eTool
			if bounded {
				c.compare(fmt.Sprintf("stored and committed, %s", k), s.med*1e6, ok, 300000, false, " packets/s")
				v, ok := r.med("e2e", k, t, "process CPU ns/pkt")
				c.compare("process CPU from the first record, "+k, v, ok, 2000, true, " ns/pkt")
				v, ok = r.med("e2e", k, t, "Cassandra CPU ns/pkt")
				c.compare("Cassandra CPU from the first record, "+k, v, ok, 2000, true, " ns/pkt")
			} else {
				c.measured = true
				c.note(fmt.Sprintf("%s, %s: %s packets/s (min–max %s–%s)", t, k, num(s.med*1e6), num(s.min*1e6), num(s.max*1e6)))
			}
			if v, ok := r.med("e2e", k, t, "process CPU ns/pkt incl. start-up"); ok {
				b, _ := r.med("e2e", k, t, "broker CPU ns/pkt")
				c.note(fmt.Sprintf("CPU per packet, %s: process %s ns with its start-up, broker %s ns from the first record", k, num(v), num(b)))
			}
			if ratio, ok := r.med("e2e", k, t, "stored ÷ pcap"); ok {
				st, _ := r.med("e2e", k, t, "stored B/pkt")
				pc, _ := r.med("e2e", k, t, "pcap B/pkt")
				per, _ := r.med("e2e", k, t, "packets per block")
				label := fmt.Sprintf("stored ÷ pcap, %s (%s B a packet in blocks, %s in the pcap; %s packets a block)", k, num(st), num(pc), num(per))
				if k == "mix" {
					c.compare(label, ratio, true, 0.8, true, "")
				} else {
					c.note(fmt.Sprintf("%s: %s", label, num(ratio)))
				}
			}
			offered, ok1 := r.stat("e2e", k, t, "paced: offered pkt/s")
			lag, ok2 := r.stat("e2e", k, t, "paced: max lag (records)")
			catchUp, ok3 := r.stat("e2e", k, t, "paced: s to catch up after the last send")
			if ok1 && ok2 && ok3 {
				secs, _ := r.med("e2e", k, t, "paced: s offered")
				pkts, _ := r.med("e2e", k, t, "paced: packets")
				pc, _ := r.med("e2e", k, t, "paced: process CPU ns/pkt")
				cc, _ := r.med("e2e", k, t, "paced: Cassandra CPU ns/pkt")
				c.note(fmt.Sprintf("paced, %s: offered %s packets/s (80 %% of the drained rate) for %s s (%s packets) while running: commit lag at most %s records (median over runs %s); CPU a packet in that phase: process %s ns, Cassandra %s ns",
					k, num(offered.med), num(secs), num(pkts), num(lag.max), num(lag.med), num(pc), num(cc)))
				// "Gone within seconds": commits come every second, so a few seconds after the last send.
				c.compare("paced, "+k+": lag gone after the last send", catchUp.max, true, 5, true, " s")
			}
			// Against the sensor's publishing rate, when the capture section measured one.
			if pub, ok := r.med("capture", "small", sensorTool, "published Mpkt/s"); ok && pub > 0 && bounded {
				c.note(fmt.Sprintf("against the sensor's publishing rate in this run (%s packets/s), %s: %s×", num(pub*1e6), k, num(s.med/pub)))
			}
		}
	}
	for _, k := range r.cases["flow-query"] {
		const q = "capfleet query packets --flow"
		secs, ok := r.stat("flow-query", k, q, "s")
		if !ok {
			continue
		}
		c.measured = true
		n, _ := r.med("flow-query", k, q, "packets written")
		fp, _ := r.med("flow-query", k, q, "flow's packets (query flows)")
		read, _ := r.med("flow-query", k, q, "blocks read")
		in, _ := r.med("flow-query", k, q, "blocks in range")
		mb, _ := r.med("flow-query", k, q, "compressed MB read")
		same := " (not the flow's count)"
		if n == fp {
			same = " (the flow's count)"
		}
		c.note(fmt.Sprintf("one flow's packets, %s (the flow with the most, %s packets by query flows): `query packets --flow` wrote %s packets%s in %s s, reading %s of %s blocks in range (%s MB compressed)",
			k, num(fp), num(n), same, secs, num(read), num(in), num(mb)))
	}
	return c.result()
}
