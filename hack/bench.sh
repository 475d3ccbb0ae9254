#!/usr/bin/env bash
# hack/bench.sh (make bench): benchmarks of capfleet against the tools users would
# otherwise use (capinfos, tcpdump, tshark, tcpreplay, a bare franz-go producer), side by side on
# the same inputs in one run, then the Go benchmarks of the hot paths. Prints the headline table and
# writes docs/benchmarks.md, with which of capfleet's performance aims (hack/benchtool/aims.go) are met.
#
#   BENCH_RUNS=5         runs of each figure (median, min-max)
#   BENCH_QUICK=1        smoke pass: 1 run, 100k-packet inputs, page written under .cache/bench/
#   BENCH_PACKETS=N      packets in each input (default 1,000,000)
#   BENCH_TSHARK_PACKETS=N  packets of each input tshark decodes (default 100,000: tshark needs tens of
#                        seconds per million packets here, five runs on both inputs would not fit in 20 min)
#   BENCH_E2E_PACKETS=N  packets of each end-to-end run through Cassandra (default 1,000,000, quick
#                        100,000; 0 skips it and Cassandra)
#   BENCH_PACED_SECONDS=S  how long the paced end-to-end phase offers packets (default 60, quick 5)
#   BENCH_ONLY=a,b       only these sections (comma-separated): read, decode, filter, flows, replay-veth,
#                        replay-kafka, capture, e2e, go; the inputs are prepared and the page written
#                        whatever is chosen (default: all)
#   BENCH_PREPARE=1      only build (and cache) the inputs
#   BENCH_OUT=FILE       where the page goes (default docs/benchmarks.md)
#   BENCH_WORK=DIR       scratch directory of the run, emptied first (default .cache/bench/run)
#
# Needs root (network namespaces, AF_PACKET). Starts Kafka and Cassandra with hack/kafka.sh and
# hack/cassandra.sh when they are not running and stops them afterwards only then; everything else it
# creates (netns, topics, keyspaces) it removes.
set -euo pipefail
shopt -s inherit_errexit
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=1 DEF_PACKETS=100000 DEF_TSHARK=20000 DEF_E2E=100000 DEF_PACED=5 DEF_OUT=$CACHE/bench/benchmarks-quick.md
else RUNS=${BENCH_RUNS:-5} DEF_PACKETS=1000000 DEF_TSHARK=100000 DEF_E2E=1000000 DEF_PACED=60 DEF_OUT=$ROOT/docs/benchmarks.md; fi
PACED_SECONDS=${BENCH_PACED_SECONDS:-$DEF_PACED}
E2E_PACKETS=${BENCH_E2E_PACKETS:-$DEF_E2E}
PACKETS=${BENCH_PACKETS:-$DEF_PACKETS}
TSHARK_PACKETS=${BENCH_TSHARK_PACKETS:-$DEF_TSHARK}
OUT=${BENCH_OUT:-$DEF_OUT}
ONLY=,${BENCH_ONLY:-read,decode,filter,flows,replay-veth,replay-kafka,capture,e2e,go},
# want SECTION: whether BENCH_ONLY chose it
want() { [[ $ONLY == *,$1,* ]]; }
for x in ${ONLY//,/ }; do
  case $x in read | decode | filter | flows | replay-veth | replay-kafka | capture | e2e | go) ;;
    *) echo "BENCH_ONLY: no section '$x' (read, decode, filter, flows, replay-veth, replay-kafka, capture, e2e, go)" >&2; exit 2 ;;
  esac
done
PCAPS=${BENCH_PCAPS:-$(cd "$ROOT/.." && pwd)/shared/pcaps}
CAPFLEET=$ROOT/bin/capfleet
BENCH=$CACHE/bench
WORK=${BENCH_WORK:-$BENCH/run}
RESULTS=$WORK/results.tsv
TOOL=$WORK/benchtool
NS=cfbench$$
# per run, so that two checkouts can measure at once (veth names are global)
TX=cfbt$$ RX=cfbr$$
STARTED_KAFKA=0 STARTED_CASSANDRA=0 CASS=()
T_START=$SECONDS

[ "$(id -u)" = 0 ] || die "needs root: network namespaces, AF_PACKET capture and raw sends"
[ -x "$CAPFLEET" ] || die "$CAPFLEET missing: run make build (make bench does)"
[ -f "$PCAPS/MANIFEST.tsv" ] || die "no captures at $PCAPS (set BENCH_PCAPS)"
for t in mergecap editcap capinfos tcpdump tshark tcpreplay /usr/bin/time curl ip; do
  command -v "$t" >/dev/null || die "$t missing: run bash hack/deps.sh"
done

rm -rf "$WORK" && mkdir -p "$WORK" "$BENCH/inputs"
: >"$RESULTS"

cleanup() {
  set +e
  [ -n "${SENSOR_PID:-}" ] && kill "$SENSOR_PID" 2>/dev/null
  [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null
  [ -n "${PROCESS_PID:-}" ] && kill "$PROCESS_PID" 2>/dev/null
  [ -n "${REPLAY_PID:-}" ] && kill "$REPLAY_PID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  # what an interrupted run left behind (a finished run removed each as soon as it was measured)
  local x
  [ "${FINISHED:-0}" = 1 ] || for x in $(cat "$WORK/topics" 2>/dev/null); do "$TOOL" topic delete "$x" >/dev/null 2>&1; done
  [ "${FINISHED:-0}" = 1 ] || for x in $(cat "$WORK/groups" 2>/dev/null); do "$TOOL" group delete "$x" >/dev/null 2>&1; done
  [ "${FINISHED:-0}" = 1 ] || for x in $(cat "$WORK/keyspaces" 2>/dev/null); do "$TOOL" keyspace drop "$x" "${CASS[@]}" >/dev/null 2>&1; done
  if [ "$STARTED_CASSANDRA" = 1 ]; then bash hack/cassandra.sh stop; fi
  if [ "$STARTED_KAFKA" = 1 ]; then bash hack/kafka.sh stop; fi
}
trap cleanup EXIT

emit() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
# phase logs a step and samples the load average, so the page can say how busy the machine was.
phase() {
  log "$* ($(( SECONDS - T_START ))s in)"
  cut -d' ' -f1 /proc/loadavg >>"$WORK/load.txt"
}

# ---------------------------------------------------------------- inputs
# select_captures small|mix: Ethernet captures of the corpus that tcpdump, capinfos and Go all read
# whole (no errors, no truncated packets, the same count); "small" keeps those whose records average
# at most 100 bytes (file bytes per packet, headers included). Prints path and packet count.
select_captures() {
  awk -F'\t' -v kind="$1" -v dir="$PCAPS" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["linktype_tcpdump"] != "link-type EN10MB (Ethernet)" { next }
    $col["tcpdump_stderr"] != "" || $col["capinfos_err"] != "" || $col["gopacket_read_err"] != "" { next }
    $col["truncated_pkts"] + 0 != 0 { next }
    # pcapgo'"'"'s parser tests: crafted blocks, some of which no pcap file can hold
    $col["local_path"] ~ /^gopacket\/pcapgo\/tests\// { next }
    { n = $col["pkts_tcpdump"] + 0 }
    n == 0 || $col["pkts_capinfos"] + 0 != n || $col["pkts_gopacket"] + 0 != n { next }
    kind == "small" && $col["size_bytes"] / n > 100 { next }
    { print dir "/" $col["local_path"] "\t" n }' "$PCAPS/MANIFEST.tsv" | sort
}

# make_input NAME: at least $PACKETS packets, the selected captures concatenated (mergecap -a) and
# the result repeated; cached under $CACHE/bench/inputs by a hash of the list and the repeat count.
make_input() {
  local name=$1 list total reps key out base
  list=$(select_captures "$name")
  [ -n "$list" ] || die "no $name captures selected from $PCAPS/MANIFEST.tsv"
  total=$(awk -F'\t' '{ s += $2 } END { print s }' <<<"$list")
  reps=$(( (PACKETS + total - 1) / total ))
  key=$( { echo "v1 $reps"; cut -f1 <<<"$list" | xargs stat -c '%n %s'; } | sha256sum | cut -c1-16)
  out=$BENCH/inputs/$name-$key.pcap
  if [ ! -s "$out" ]; then
    log "building the $name input: $(wc -l <<<"$list") captures, $total packets, repeated $reps times"
    base=$BENCH/inputs/$name-$key.once.pcap
    # shellcheck disable=SC2046
    mergecap -a -F pcap -w "$base" $(cut -f1 <<<"$list") || die "mergecap could not concatenate the $name captures"
    local args=() i
    for ((i = 0; i < reps; i++)); do args+=("$base"); done
    mergecap -a -F pcap -w "$out.tmp" "${args[@]}" || die "mergecap could not repeat $base"
    mv "$out.tmp" "$out"
    rm -f "$base"
    cut -f1 <<<"$list" | sed "s|^$PCAPS/||" >"$out.list"
  fi
  echo "$out"
}

# make_live_input SMALL: the small input with its timestamps rewritten as a live sensor capturing it
# would stamp them: in file order, 2 µs apart, from an hour before the input was built (benchtool
# retime, nanosecond pcap), cached beside it under the same key. Why: a packet record carries its
# capture time (the Metron convention), and the processor cuts blocks and indexes them by packet time;
# the small input concatenates captures from different years (194 of the corpus, of the 1,542 the mix
# takes) and repeats them, so its timestamps jump across years and the packets of one Kafka partition spread over many index minutes, which a sensor's
# own records, in time order, never do. The end-to-end section runs on both.
make_live_input() {
  local src=$1 out
  out=$BENCH/inputs/small-live-${src##*/small-}
  if [ ! -s "$out" ]; then
    log "building the small-live input: $(basename "$src") retimed (benchtool retime)"
    "$TOOL" retime "$src" "$out" || die "benchtool retime $src failed"
  fi
  echo "$out"
}

# slice FILE N: the first N packets of FILE (cached beside it)
slice() {
  local out=${1%.pcap}.first$2.pcap
  [ -s "$out" ] || editcap -r "$1" "$out" "1-$2"
  echo "$out"
}

packets_of() { "$CAPFLEET" pcap info -o json "$1" | grep -o '"packets": *[0-9]*' | head -1 | grep -o '[0-9]*$'; }

phase "building hack/benchtool"
go build -o "$TOOL" ./hack/benchtool
phase "preparing inputs (>= $PACKETS packets each)"
declare -A FILE NPKT NBYTES
for k in small mix; do
  FILE[$k]=$(make_input "$k")
  NPKT[$k]=$(packets_of "${FILE[$k]}")
  NBYTES[$k]=$(stat -c %s "${FILE[$k]}")
  cat "${FILE[$k]}" >/dev/null # into the page cache before the first timed read
  log "input $k: ${FILE[$k]} (${NPKT[$k]} packets, ${NBYTES[$k]} bytes)"
done
if [ "$E2E_PACKETS" -gt 0 ]; then
  FILE[small-live]=$(make_live_input "${FILE[small]}")
  NPKT[small-live]=$(packets_of "${FILE[small-live]}")
  NBYTES[small-live]=$(stat -c %s "${FILE[small-live]}")
  log "input small-live: ${FILE[small-live]} (${NPKT[small-live]} packets, ${NBYTES[small-live]} bytes)"
fi
[ "${BENCH_PREPARE:-0}" = 1 ] && { log "inputs ready (BENCH_PREPARE=1: nothing measured)"; exit 0; }

# ---------------------------------------------------------------- measuring
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# svc_ticks NAME: CPU ticks used so far by the service hack/NAME.sh started (0 if none), so the
# broker's and the database's share of a figure shows; others using them at the time count too.
svc_ticks() { if running "$1"; then cpu_ticks "$(cat "$RUN/$1.pid")"; else echo 0; fi; }
per_pkt_ns() { calc "($2 - $1) / $HZ * 1e9 / ($3 > 0 ? $3 : 1)"; } # TICKS0 TICKS1 PACKETS
# measure SECTION CASE TOOL PACKETS BYTES CMD...: one timed run; stdout goes to $MEASURE_OUT
# (default /dev/null), the packet rate from the wall clock is named $RATE_NAME (default Mpkt/s).
# Sets LAST_WALL, LAST_CPU, LAST_RSS_MB for the caller's own figures.
measure() {
  local sec=$1 kase=$2 tool=$3 pkts=$4 bytes=$5; shift 5
  local tv=$WORK/time.txt t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -v -o "$tv" "$@" >"${MEASURE_OUT:-/dev/null}" 2>"$WORK/stderr.txt"; then
    tail -5 "$WORK/stderr.txt" >&2
    die "$tool failed: $*"
  fi
  t1=$(date +%s%N)
  LAST_WALL=$(calc "($t1 - $t0) / 1e9")
  LAST_CPU=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.3f", s }' "$tv")
  LAST_RSS_MB=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tv")
  emit "$sec" "$kase" "$tool" "${RATE_NAME:-Mpkt/s}" "$(calc "$pkts / $LAST_WALL / 1e6")"
  case $sec in
    read)
      emit "$sec" "$kase" "$tool" "MB/s" "$(calc "$bytes / $LAST_WALL / 1e6")"
      emit "$sec" "$kase" "$tool" "MB/s per core" "$(calc "$bytes / ($LAST_CPU > 0 ? $LAST_CPU : 0.01) / 1e6")" ;;
    decode | filter | flows) emit "$sec" "$kase" "$tool" "Mpkt/s per core" "$(calc "$pkts / ($LAST_CPU > 0 ? $LAST_CPU : 0.01) / 1e6")" ;;
  esac
  emit "$sec" "$kase" "$tool" "wall s" "$LAST_WALL"
  emit "$sec" "$kase" "$tool" "CPU s" "$LAST_CPU"
  emit "$sec" "$kase" "$tool" "peak RSS MB" "$LAST_RSS_MB"
}

FIELDS=frame.number,frame.time_epoch,frame.len,eth.src,eth.dst,vlan.id,ip.src,ip.dst,ipv6.src,ipv6.dst,ip.proto,tcp.srcport,tcp.dstport,tcp.flags,udp.srcport,udp.dstport,dns.qry.name
# tshark as decode's parity tests run it: the first occurrence of each field, no reassembly.
TSHARK=(tshark -n -T fields -E separator=/t -E occurrence=f -o ip.defragment:FALSE -o ipv6.defragment:FALSE)
for f in ${FIELDS//,/ }; do TSHARK+=(-e "$f"); done
# A display filter of addresses, ports, lengths and a DNS name, applied by capfleet pcap decode -Y and by
# tshark -Y (no reassembly, as the parity test runs it) to the same slice, each printing frame numbers:
# beside BenchmarkMatch (the evaluation alone), what a user waits for with one tool or the other.
DFILTER='(ip.addr == 10.0.0.0/8 || ipv6) && (tcp.port in {80, 443, 8000..8080} || udp.port == 53) && frame.len > 60 || dns.qry.name contains "example"'
TSHARK_Y=(tshark -n -T fields -e frame.number -o ip.defragment:FALSE -o ipv6.defragment:FALSE -Y "$DFILTER")

want read || want decode || want filter || want flows && phase "read, decode, flows: $RUNS runs"
for ((run = 1; run <= RUNS; run++)); do
  for k in small mix; do
    f=${FILE[$k]} p=${NPKT[$k]} b=${NBYTES[$k]}
    if want read; then
      measure read "$k" "capfleet pcap info" "$p" "$b" "$CAPFLEET" pcap info "$f"
      measure read "$k" "capinfos" "$p" "$b" capinfos "$f"
      measure read "$k" "tcpdump -r -w /dev/null" "$p" "$b" tcpdump -r "$f" -w /dev/null
    fi
    if want filter && [ "$TSHARK_PACKETS" -gt 0 ]; then
      s=$(slice "$f" "$TSHARK_PACKETS") sk="$k, first $TSHARK_PACKETS packets"
      measure filter "$sk" "capfleet pcap decode -Y" "$TSHARK_PACKETS" 0 "$CAPFLEET" pcap decode --fields frame.number -Y "$DFILTER" "$s"
      measure filter "$sk" "tshark -Y" "$TSHARK_PACKETS" 0 "${TSHARK_Y[@]}" -r "$s"
    fi
    want decode || { want flows && measure flows "$k" "capfleet pcap flows" "$p" "$b" "$CAPFLEET" pcap flows "$f"; continue; }
    measure decode "$k" "capfleet pcap decode" "$p" "$b" "$CAPFLEET" pcap decode --fields "$FIELDS" "$f"
    measure decode "$k" "tcpdump -nn -r" "$p" "$b" tcpdump -nn -r "$f"
    if [ "$TSHARK_PACKETS" -gt 0 ]; then
      s=$(slice "$f" "$TSHARK_PACKETS") sk="$k, first $TSHARK_PACKETS packets"
      measure decode "$sk" "capfleet pcap decode" "$TSHARK_PACKETS" 0 "$CAPFLEET" pcap decode --fields "$FIELDS" "$s"
      measure decode "$sk" "tcpdump -nn -r" "$TSHARK_PACKETS" 0 tcpdump -nn -r "$s"
      measure decode "$sk" "tshark -T fields" "$TSHARK_PACKETS" 0 "${TSHARK[@]}" -r "$s"
    fi
    want flows && measure flows "$k" "capfleet pcap flows" "$p" "$b" "$CAPFLEET" pcap flows "$f"
  done
done

# ---------------------------------------------------------------- a veth pair in a namespace
# Both ends live in $NS: senders write to $TX, the peer $RX receives (and is where captures listen).
# No addresses and no IPv6, so the only packets on the pair are the ones replayed.
if want replay-veth || want capture; then
phase "veth pair $TX <-> $RX in netns $NS"
ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link add "$TX" type veth peer name "$RX"
# The largest MTU a veth takes, so the mix's jumbo and offloaded frames go out as they were captured.
ip -n "$NS" link set "$TX" mtu 65535 up
ip -n "$NS" link set "$RX" mtu 65535 up
ip -n "$NS" link set lo up
rx_packets() { ip netns exec "$NS" cat "/sys/class/net/$RX/statistics/rx_packets"; }
inns() { ip netns exec "$NS" "$@"; }
fi

# rated OUT: packets/s, Mbit/s, successful and failed packets from tcpreplay's summary (capfleet
# replay prints the same lines).
rated() {
  RATE_PPS=$(sed -n 's/.*Rated: .* Mbps, \([0-9.]*\) pps.*/\1/p' "$1" | tail -1)
  RATE_MBPS=$(sed -n 's/.*Rated: .* Bps, \([0-9.]*\) Mbps.*/\1/p' "$1" | tail -1)
  SENT=$(awk '/Successful packets:/ { n = $3 } END { print n + 0 }' "$1")
  FAILED=$(awk '/Failed packets:/ { n = $3 } END { print n + 0 }' "$1")
  [ -n "$RATE_PPS" ] || { cat "$1" >&2; die "no 'Rated:' line in the replay's summary"; }
}

# replay_figures SECTION CASE TOOL PACKETS OUT: the figures of a replay from its own summary
replay_figures() {
  rated "$5"
  emit "$1" "$2" "$3" "Mpkt/s" "$(calc "$RATE_PPS / 1e6")"
  emit "$1" "$2" "$3" "Mbit/s" "$RATE_MBPS"
  emit "$1" "$2" "$3" "CPU ns/pkt" "$(calc "$LAST_CPU * 1e9 / ($SENT > 0 ? $SENT : 1)")"
  emit "$1" "$2" "$3" "sent" "$SENT"
  emit "$1" "$2" "$3" "failed" "$FAILED"
  emit "$1" "$2" "$3" "packets in file" "$4"
}

want replay-veth && phase "replay onto the veth: $RUNS runs"
for ((run = 1; run <= RUNS; run++)); do
  want replay-veth || break
  for k in small mix; do
    f=${FILE[$k]} p=${NPKT[$k]} b=${NBYTES[$k]}
    r0=$(rx_packets)
    MEASURE_OUT=$WORK/replay.out RATE_NAME="Mpkt/s incl. start-up" \
      measure replay-veth "$k" "capfleet pcap replay --interface" "$p" "$b" \
      ip netns exec "$NS" "$CAPFLEET" pcap replay "$f" --interface "$TX" --top-speed
    replay_figures replay-veth "$k" "capfleet pcap replay --interface" "$p" "$WORK/replay.out"
    emit replay-veth "$k" "capfleet pcap replay --interface" "received on peer" "$(( $(rx_packets) - r0 ))"
    r0=$(rx_packets)
    MEASURE_OUT=$WORK/replay.out RATE_NAME="Mpkt/s incl. start-up" \
      measure replay-veth "$k" "tcpreplay --topspeed" "$p" "$b" \
      ip netns exec "$NS" tcpreplay -i "$TX" --topspeed --no-flow-stats "$f"
    replay_figures replay-veth "$k" "tcpreplay --topspeed" "$p" "$WORK/replay.out"
    emit replay-veth "$k" "tcpreplay --topspeed" "received on peer" "$(( $(rx_packets) - r0 ))"
  done
done

# ---------------------------------------------------------------- Kafka
NEED_KAFKA=0
want replay-kafka || want capture || { want e2e && [ "$E2E_PACKETS" -gt 0 ]; } && NEED_KAFKA=1
if [ "$NEED_KAFKA" = 0 ]; then
  :
elif bash hack/kafka.sh status >/dev/null 2>&1; then
  log "using the running Kafka ($(bash hack/kafka.sh status))"
elif running kafka; then
  # started by hack/kafka.sh and alive but not answering: neither start another nor stop it at the end
  die "the Kafka of $RUN/kafka.pid is running but not ready ($(bash hack/kafka.sh status 2>&1 || true))"
else
  phase "starting Kafka (hack/kafka.sh start; stopped again at the end)"
  bash hack/kafka.sh start
  STARTED_KAFKA=1
fi
PARTITIONS=3
new_topic() {
  local t=cfbench-$$-$1
  echo "$t" >>"$WORK/topics"
  "$TOOL" topic create "$t" --partitions "$PARTITIONS" >&2
  echo "$t"
}

# The bare producer, tuned as capfleet's (workload.PacketsProducerTuning); the name is
# hack/benchtool's ceilingTool.
CEILING="franz-go producer (lz4, 20 ms linger, 1 MiB batches)"
want replay-kafka && phase "replay into Kafka: $RUNS runs (small input, $PARTITIONS partitions)"
k=small f=${FILE[small]} p=${NPKT[small]} b=${NBYTES[small]}
for ((run = 1; run <= RUNS; run++)); do
  want replay-kafka || break
  t=$(new_topic "replay-$run") k0=$(svc_ticks kafka)
  MEASURE_OUT=$WORK/replay.out RATE_NAME="Mpkt/s incl. start-up" \
    measure replay-kafka "$k" "capfleet pcap replay --to-topic" "$p" "$b" \
    env NODE_NAME=bench "$CAPFLEET" pcap replay "$f" --to-topic "$t" --top-speed
  rated "$WORK/replay.out"
  emit replay-kafka "$k" "capfleet pcap replay --to-topic" "Mpkt/s" "$(calc "$RATE_PPS / 1e6")"
  emit replay-kafka "$k" "capfleet pcap replay --to-topic" "CPU ns/pkt" "$(calc "$LAST_CPU * 1e9 / $p")"
  emit replay-kafka "$k" "capfleet pcap replay --to-topic" "broker CPU ns/pkt" "$(per_pkt_ns "$k0" "$(svc_ticks kafka)" "$p")"
  emit replay-kafka "$k" "capfleet pcap replay --to-topic" "records in topic" "$("$TOOL" topic count "$t")"
  "$TOOL" topic delete "$t"
  t=$(new_topic "ceiling-$run") k0=$(svc_ticks kafka)
  MEASURE_OUT=$WORK/produce.out RATE_NAME="Mpkt/s incl. start-up" \
    measure replay-kafka "$k" "$CEILING" "$p" "$b" "$TOOL" produce --file "$f" --topic "$t"
  pps=$(grep -o 'pps=[0-9.]*' "$WORK/produce.out" | cut -d= -f2)
  emit replay-kafka "$k" "$CEILING" "Mpkt/s" "$(calc "$pps / 1e6")"
  # its CPU on the clock only: loading and encoding the records beforehand is not the producer's
  emit replay-kafka "$k" "$CEILING" "CPU ns/pkt" "$(grep -o 'cpu_ns_per_packet=[0-9.]*' "$WORK/produce.out" | cut -d= -f2)"
  emit replay-kafka "$k" "$CEILING" "broker CPU ns/pkt" "$(per_pkt_ns "$k0" "$(svc_ticks kafka)" "$p")"
  emit replay-kafka "$k" "$CEILING" "records in topic" "$("$TOOL" topic count "$t")"
  "$TOOL" topic delete "$t"
done

# ---------------------------------------------------------------- capture at line rate
peak_rss_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# free_port: a port nobody listens on, below the ephemeral range (32768+) that outgoing connections use
free_port() {
  local p
  for p in $(shuf -i 20000-29999 -n 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found in 20000-29999"
}
METRICS=127.0.0.1:$(free_port) HEALTH=127.0.0.1:$(free_port)
sensor_metric() { # NAME LABEL=VALUE: one counter of the sensor's /metrics
  { curl -fs "http://$METRICS/metrics" || true; } | awk -v n="$1" -v l="$2" '$1 ~ "^"n"[{]" && index($1, l) { s += $2 } END { printf "%.0f", s }'
}
# offer K: tcpreplay at top speed onto the veth; sets SENT and RATE_PPS
offer() {
  inns tcpreplay -i "$TX" --topspeed --no-flow-stats "${FILE[$1]}" >"$WORK/offer.out" 2>&1 || { cat "$WORK/offer.out" >&2; die "tcpreplay failed"; }
  rated "$WORK/offer.out"
}
# emit_captured K TOOL CAPTURED KERNEL_DROPS RX0: the figures of every capture tool (RX0: rx_packets before offer)
emit_captured() {
  emit capture "$1" "$2" "captured %" "$(calc "$3 * 100 / $SENT")"
  emit capture "$1" "$2" "offered Mpkt/s" "$(calc "$RATE_PPS / 1e6")"
  emit capture "$1" "$2" "sent" "$SENT"
  emit capture "$1" "$2" "received on peer" "$(( $(rx_packets) - $5 ))"
  emit capture "$1" "$2" "captured" "$3"
  emit capture "$1" "$2" "kernel drops" "$4"
}

want capture && phase "capture at line rate: $RUNS runs (small input at tcpreplay's top speed)"
k=small
for ((run = 1; run <= RUNS; run++)); do
  want capture || break
  tool="capfleet sensor → Kafka"
  t=$(new_topic "capture-$run")
  NODE_NAME=bench "$CAPFLEET" sensor --netns "/var/run/netns/$NS" --interfaces "$RX" --topic "$t" \
    --metrics-addr "$METRICS" --health-addr "$HEALTH" >"$WORK/sensor.log" 2>&1 &
  SENSOR_PID=$!
  for ((i = 0; i < 600; i++)); do
    curl -fs "http://$HEALTH/readyz" >/dev/null 2>&1 && break
    kill -0 "$SENSOR_PID" 2>/dev/null || { tail "$WORK/sensor.log" >&2; die "the sensor exited at start"; }
    sleep 0.1
  done
  c0=$(cpu_ticks "$SENSOR_PID") r0=$(rx_packets) k0=$(svc_ticks kafka) p0=$(date +%s%N)
  offer "$k"
  # The sensor is done when every packet the kernel handed over has left its buffer for Kafka; p1 is
  # the last look that found new packets captured and none left in the buffer (the publishing rate's
  # end, within a poll), confirmed by a next look that finds nothing new.
  last=-1 p1=
  for ((i = 0; i < 6000; i++)); do
    cap=$(sensor_metric capfleet_sensor_packets_total 'outcome="captured"')
    buf=$(sensor_metric capfleet_sensor_buffered_packets interface)
    [ "$buf" = 0 ] && [ "$cap" = "$last" ] && break
    if [ "$buf" = 0 ]; then p1=$(date +%s%N); else p1=; fi
    last=$cap
    sleep 0.1
  done
  c1=$(cpu_ticks "$SENSOR_PID") rss=$(peak_rss_mb "$SENSOR_PID") k1=$(svc_ticks kafka)
  pub=$(sensor_metric capfleet_sensor_packets_total 'outcome="published"')
  kd=$(sensor_metric capfleet_sensor_drops_total 'cause="kernel"')
  idrops=$(sensor_metric capfleet_sensor_drops_total 'cause="interface"')
  bdrops=$(sensor_metric capfleet_sensor_drops_total 'cause="buffer_full"')
  pfail=$(sensor_metric capfleet_sensor_drops_total 'cause="produce_failed"')
  kill "$SENSOR_PID"; wait "$SENSOR_PID" || true; SENSOR_PID=
  # What reached Kafka, counted by the broker (the topic's end offsets), not by the sensor: the headline.
  intopic=$("$TOOL" topic count "$t")
  emit capture "$k" "$tool" "in topic %" "$(calc "$intopic * 100 / $SENT")"
  emit capture "$k" "$tool" "in topic" "$intopic"
  emit_captured "$k" "$tool" "$cap" "$kd" "$r0"
  emit capture "$k" "$tool" "interface drops" "$idrops"
  emit capture "$k" "$tool" "buffer drops" "$bdrops"
  emit capture "$k" "$tool" "produce failures" "$pfail"
  emit capture "$k" "$tool" "published to Kafka" "$pub"
  # Packets in the topic over the time from the first packet offered to the last one acknowledged: what
  # the end-to-end rate is compared with.
  emit capture "$k" "$tool" "published Mpkt/s" "$(calc "$pub / ((${p1:-$(date +%s%N)} - $p0) / 1e9) / 1e6")"
  emit capture "$k" "$tool" "CPU ns/pkt" "$(per_pkt_ns "$c0" "$c1" "$cap")"
  emit capture "$k" "$tool" "peak RSS MB" "$rss"
  emit capture "$k" "$tool" "broker CPU ns/pkt" "$(per_pkt_ns "$k0" "$k1" "$cap")"
  "$TOOL" topic delete "$t"

  tool="tcpdump -i -w /dev/null"
  : >"$WORK/tcpdump.err"
  # not through inns: $! must be tcpdump itself (ip netns exec execs it), to read its /proc and signal it
  ip netns exec "$NS" tcpdump -i "$RX" -w /dev/null 2>"$WORK/tcpdump.err" &
  TCPDUMP_PID=$!
  for ((i = 0; i < 300; i++)); do grep -q "listening on" "$WORK/tcpdump.err" && break; sleep 0.1; done
  c0=$(cpu_ticks "$TCPDUMP_PID") r0=$(rx_packets)
  offer "$k"
  sleep 1 # tcpdump drains its buffer
  c1=$(cpu_ticks "$TCPDUMP_PID") rss=$(peak_rss_mb "$TCPDUMP_PID")
  kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true; TCPDUMP_PID=
  cap=$(awk '/packets captured/ { print $1 }' "$WORK/tcpdump.err")
  kd=$(awk '/packets dropped by kernel/ { print $1 }' "$WORK/tcpdump.err")
  emit_captured "$k" "$tool" "$cap" "$kd" "$r0"
  emit capture "$k" "$tool" "CPU ns/pkt" "$(per_pkt_ns "$c0" "$c1" "$cap")"
  emit capture "$k" "$tool" "peak RSS MB" "$rss"
done
ip netns del "$NS" 2>/dev/null || true

# ---------------------------------------------------------------- end to end
# Per run and input, the first $E2E_PACKETS packets go into a topic, then one `capfleet process` drains
# it into Cassandra: the rate it sustains is packets over the time from its first record consumed (t1)
# to every packet stored and every offset committed (t2).
#   - small: the small input with its files' own timestamps; small-live: the same packets stamped as a
#     live sensor would (see make_live_input); both with packets and flows stored, then the input offered
#     again, looped, at 80 % of the drained rate for $PACED_SECONDS s while it runs (paced), to see whether
#     it keeps up.
#   - mix: packets only (no flows), one drain: the rate on larger packets and what blocks store of them.
# CPU per packet of the process, Cassandra and the broker counts from t1 to t2, over the drained packets:
# at start the process creates the keyspace and its tables, which Cassandra pays once per keyspace, not
# per packet. The process's own CPU is given, besides, with its start-up; the paced phase's CPU over its
# own packets. After each small-live drain (before the paced phase) the flow with the most packets is
# exported with `capfleet query packets --flow` and timed.
if [ "$E2E_PACKETS" -gt 0 ] && want e2e; then
  if bash hack/cassandra.sh status >/dev/null 2>&1; then
    log "using the running Cassandra"
    # A node started for tests runs C1 only (hack/cassandra.sh): its figures would count a handicap no
    # production node has. Say so on the page rather than measure it silently.
    if tr '\0' '\n' </proc/"$(cat "$RUN/cassandra.pid")"/cmdline | grep -qx -- -XX:TieredStopAtLevel=1; then
      log "WARNING: the running Cassandra has no C2 compiler (a test node): restart it with CASSANDRA_JIT=full for figures that mean something"
    fi
  elif running cassandra; then
    die "the Cassandra of $RUN/cassandra.pid is running but not ready (bash hack/cassandra.sh status): not starting or stopping it"
  else
    phase "starting Cassandra (hack/cassandra.sh start, full JIT; stopped again at the end)"
    CASSANDRA_JIT=full bash hack/cassandra.sh start
    STARTED_CASSANDRA=1
  fi
  # shellcheck disable=SC1091
  . "$RUN/cassandra/env"
  CASS=(--cassandra-hosts "$CASSANDRA_HOSTS" --cassandra-port "$CASSANDRA_PORT" --cassandra-secret-dir "$CASSANDRA_SECRET_DIR")
  process_metric() {
    { curl -fs "http://$METRICS/metrics" || true; } | awk -v n="capfleet_process_$1" '$1 == n || index($1, n"{") == 1 { s += $2 } END { printf "%.0f", s }'
  }
  # The whole time range of the live input, in seconds since the epoch, for the queries.
  live_info=$("$CAPFLEET" pcap info -o json "${FILE[small-live]}")
  LIVE_FROM=$(date -d "$(sed -n 's/.*"first": *"\([^"]*\)".*/\1/p' <<<"$live_info")" +%s)
  LIVE_TO=$(( $(date -d "$(sed -n 's/.*"last": *"\([^"]*\)".*/\1/p' <<<"$live_info")" +%s) + 2 ))

  # e2e_drain K N RUN FLAGS...: N packets of input K into a new topic, then `capfleet process FLAGS`
  # (left running, PROCESS_PID) drains it into keyspace $KS. Sets T0 (before the start), T1 (first record
  # consumed), T2 (N stored and committed), C1 K1 D1 and C2 K2 D2 (CPU ticks of the process, Kafka,
  # Cassandra at T1 and at T2),
  # MAXQ (most uncommitted records seen), TOPIC and GROUP.
  e2e_drain() {
    local k=$1 n=$2 run=$3 recs q written lag deadline; shift 3
    TOPIC=$(new_topic "e2e-$k-$run") KS=cfbench_$$_${k//-/_}_$run GROUP=cfbench-$$-$k-$run
    echo "$KS" >>"$WORK/keyspaces"
    echo "$GROUP" >>"$WORK/groups"
    env NODE_NAME=bench "$CAPFLEET" pcap replay "${FILE[$k]}" --to-topic "$TOPIC" --top-speed --limit "$n" >/dev/null
    T0=$(date +%s%N)
    "$CAPFLEET" process --topic "$TOPIC" --group "$GROUP" --keyspace "$KS" "$@" \
      --sensor bench --stats-topic "" --metrics-addr "$METRICS" --health-addr "$HEALTH" "${CASS[@]}" >"$WORK/process.log" 2>&1 &
    PROCESS_PID=$!
    T1='' MAXQ=0 deadline=$((SECONDS + 600))
    # Until the first record, polled every 50 ms, so t1 is close to the start of the work.
    while [ -z "$T1" ]; do
      kill -0 "$PROCESS_PID" 2>/dev/null || { tail "$WORK/process.log" >&2; die "capfleet process exited"; }
      [ "$SECONDS" -lt "$deadline" ] || die "capfleet process consumed nothing in 10 minutes"
      recs=$(process_metric records_total)
      if [ "${recs:-0}" -gt 0 ]; then
        T1=$(date +%s%N) C1=$(cpu_ticks "$PROCESS_PID") K1=$(svc_ticks kafka) D1=$(svc_ticks cassandra)
      else
        sleep 0.05
      fi
    done
    while :; do
      kill -0 "$PROCESS_PID" 2>/dev/null || { tail "$WORK/process.log" >&2; die "capfleet process exited"; }
      q=$(process_metric uncommitted_records)
      [ "${q:-0}" -gt "$MAXQ" ] && MAXQ=$q
      written=$(process_metric packets_written_total) lag=$(process_metric commit_lag)
      [ "${written:-0}" -ge "$n" ] && [ "$lag" = 0 ] && break
      [ "$SECONDS" -lt "$deadline" ] || { tail "$WORK/process.log" >&2; die "capfleet process did not store $n packets of $k in 10 minutes (stored $written)"; }
      sleep 0.25
    done
    T2=$(date +%s%N) C2=$(cpu_ticks "$PROCESS_PID") K2=$(svc_ticks kafka) D2=$(svc_ticks cassandra)
  }
  # e2e_end K TOOL PACKETS: the figures every input gets, at the end of a run (the process still running);
  # PACKETS is what the drain (t1 to t2) stored.
  e2e_end() {
    local k=$1 tool=$2 n=$3 written blocks bytes stored pcap
    written=$(process_metric packets_written_total) blocks=$(process_metric blocks_written_total)
    bytes=$(process_metric block_bytes_written_total)
    stored=$(calc "$bytes / ($written > 0 ? $written : 1)") pcap=$(calc "${NBYTES[$k]} / ${NPKT[$k]}")
    emit e2e "$k" "$tool" "process CPU ns/pkt" "$(per_pkt_ns "$C1" "$C2" "$n")"
    emit e2e "$k" "$tool" "process CPU ns/pkt incl. start-up" "$(per_pkt_ns 0 "$C2" "$n")"
    emit e2e "$k" "$tool" "Cassandra CPU ns/pkt" "$(per_pkt_ns "$D1" "$D2" "$n")"
    emit e2e "$k" "$tool" "broker CPU ns/pkt" "$(per_pkt_ns "$K1" "$K2" "$n")"
    emit e2e "$k" "$tool" "process peak RSS MB" "$(peak_rss_mb "$PROCESS_PID")"
    emit e2e "$k" "$tool" "max uncommitted records" "$MAXQ"
    emit e2e "$k" "$tool" "closed flows stored" "$(process_metric flows_written_total)"
    emit e2e "$k" "$tool" "open flows' totals stored" "$(process_metric flow_updates_total)"
    emit e2e "$k" "$tool" "packets per block" "$(calc "$written / ($blocks > 0 ? $blocks : 1)")"
    emit e2e "$k" "$tool" "stored B/pkt" "$stored"
    emit e2e "$k" "$tool" "pcap B/pkt" "$pcap"
    emit e2e "$k" "$tool" "stored ÷ pcap" "$(calc "$stored / $pcap")"
    kill "$PROCESS_PID"; wait "$PROCESS_PID" || true; PROCESS_PID=
  }
  e2e_cleanup() {
    "$TOOL" topic delete "$TOPIC"
    "$TOOL" keyspace drop "$KS" "${CASS[@]}"
    "$TOOL" group delete "$GROUP"
  }
  # query_flow: the flow with the most packets in $KS, its packets exported with query packets --flow
  query_flow() {
    local tool="capfleet query packets --flow" top uid n q0 q1 wrote i
    # The live input's flows are all still open after the drain: their running totals reach Cassandra
    # with the process's first open-flow update (every 10 s by default).
    for ((i = 0; i < 120 && $(process_metric flow_updates_total) == 0; i++)); do sleep 0.25; done
    "$CAPFLEET" query flows -o json --keyspace "$KS" --from "$LIVE_FROM" --to "$LIVE_TO" "${CASS[@]}" >"$WORK/flows.json"
    top=$(awk '
      { u = ""; n = 0
        if (match($0, /"uid": *"[^"]*"/)) { u = substr($0, RSTART, RLENGTH); sub(/^"uid": *"/, "", u); sub(/"$/, "", u) }
        if (match($0, /"orig_pkts": *[0-9]+/)) { x = substr($0, RSTART, RLENGTH); sub(/.*: */, "", x); n += x }
        if (match($0, /"resp_pkts": *[0-9]+/)) { x = substr($0, RSTART, RLENGTH); sub(/.*: */, "", x); n += x }
        if (u != "" && n > best) { best = n; bu = u } }
      END { if (bu != "") print bu, best }' "$WORK/flows.json")
    [ -n "$top" ] || { log "query flows found no flow in $KS ($(wc -l <"$WORK/flows.json") lines): no flow query"; return 0; }
    read -r uid n <<<"$top"
    q0=$(date +%s%N)
    "$CAPFLEET" query packets --keyspace "$KS" --sensor bench --flow "$uid" --from "$LIVE_FROM" --to "$LIVE_TO" \
      --stats -w "$WORK/flow.pcap" "${CASS[@]}" 2>"$WORK/query.err" || { cat "$WORK/query.err" >&2; die "query packets --flow $uid failed"; }
    q1=$(date +%s%N)
    wrote=$(sed -n 's/^wrote \([0-9]*\) packets.*/\1/p' "$WORK/query.err")
    emit flow-query small-live "$tool" "s" "$(calc "($q1 - $q0) / 1e9")"
    emit flow-query small-live "$tool" "flow's packets (query flows)" "$n"
    emit flow-query small-live "$tool" "packets written" "${wrote:-0}"
    emit flow-query small-live "$tool" "blocks read" "$(sed -n 's/^read \([0-9]*\) of .*/\1/p' "$WORK/query.err")"
    emit flow-query small-live "$tool" "blocks in range" "$(sed -n 's/^read [0-9]* of \([0-9]*\) blocks.*/\1/p' "$WORK/query.err")"
    emit flow-query small-live "$tool" "compressed MB read" "$(calc "$(sed -n 's/.*(\([0-9]*\) compressed bytes).*/\1/p' "$WORK/query.err") / 1e6")"
  }

  phase "end to end: $RUNS runs of $E2E_PACKETS packets of small, small-live (paced too) and mix"
  for ((run = 1; run <= RUNS; run++)); do
    for k in small small-live; do
      tool="replay → Kafka → capfleet process → Cassandra"
      n=$(( E2E_PACKETS < ${NPKT[$k]} ? E2E_PACKETS : ${NPKT[$k]} ))
      e2e_drain "$k" "$n" "$run" --store-packets --store-flows
      [ "$k" = small-live ] && query_flow
      # Paced: the input again, looped, offered at 80 % of the rate just drained for $PACED_SECONDS s while
      # the pipeline runs; the lag it builds up and how long it takes to catch up after the last send say
      # whether it keeps up.
      pps=$(calc "0.8 * $n / (($T2 - $T1) / 1e9)")
      m=$(awk "BEGIN { printf \"%d\", $pps * $PACED_SECONDS }")
      tp=$(date +%s%N)
      env NODE_NAME=bench "$CAPFLEET" pcap replay "${FILE[$k]}" --to-topic "$TOPIC" --pps "$pps" --loop 0 --limit "$m" >"$WORK/paced.out" 2>&1 &
      REPLAY_PID=$!
      maxlag=0
      while kill -0 "$REPLAY_PID" 2>/dev/null; do
        lag=$(process_metric commit_lag)
        [ "$lag" -gt "$maxlag" ] && maxlag=$lag
        sleep 0.25
      done
      wait "$REPLAY_PID" || { cat "$WORK/paced.out" >&2; die "the paced replay failed"; }
      REPLAY_PID=
      t3=$(date +%s%N) done=0
      for ((i = 0; i < 2400; i++)); do
        written=$(process_metric packets_written_total) lag=$(process_metric commit_lag)
        [ "$lag" -gt "$maxlag" ] && maxlag=$lag
        if [ "$written" -ge $((n + m)) ] && [ "$lag" = 0 ]; then done=1; break; fi
        sleep 0.25
      done
      t4=$(date +%s%N) c4=$(cpu_ticks "$PROCESS_PID") d4=$(svc_ticks cassandra)
      [ "$done" = 1 ] || { tail "$WORK/process.log" >&2; die "capfleet process did not catch up with the paced replay in 10 minutes"; }
      emit e2e "$k" "$tool" "Mpkt/s" "$(calc "$n / (($T2 - $T1) / 1e9) / 1e6")"
      emit e2e "$k" "$tool" "wall s incl. start-up" "$(calc "($T2 - $T0) / 1e9")"
      emit e2e "$k" "$tool" "paced: offered pkt/s" "$pps"
      emit e2e "$k" "$tool" "paced: max lag (records)" "$maxlag"
      emit e2e "$k" "$tool" "paced: s to catch up after the last send" "$(calc "($t4 - $t3) / 1e9")"
      emit e2e "$k" "$tool" "paced: s offered" "$(calc "($t3 - $tp) / 1e9")"
      emit e2e "$k" "$tool" "paced: packets" "$m"
      emit e2e "$k" "$tool" "paced: process CPU ns/pkt" "$(per_pkt_ns "$C2" "$c4" "$m")"
      emit e2e "$k" "$tool" "paced: Cassandra CPU ns/pkt" "$(per_pkt_ns "$D2" "$d4" "$m")"
      e2e_end "$k" "$tool" "$n"
      e2e_cleanup
    done
    k=mix tool="replay → Kafka → capfleet process (packets only) → Cassandra"
    n=$(( E2E_PACKETS < ${NPKT[mix]} ? E2E_PACKETS : ${NPKT[mix]} ))
    e2e_drain mix "$n" "$run" --store-packets
    emit e2e mix "$tool" "Mpkt/s" "$(calc "$n / (($T2 - $T1) / 1e9) / 1e6")"
    emit e2e mix "$tool" "wall s incl. start-up" "$(calc "($T2 - $T0) / 1e9")"
    e2e_end mix "$tool" "$n"
    e2e_cleanup
  done
fi

# ---------------------------------------------------------------- Go benchmarks of the hot paths
want go && phase "Go benchmarks (-count $RUNS)"
gobench() { # PKG REGEXP
  want go || return 0
  go test -run '^$' -bench "$2" -benchmem -count "$RUNS" "$1" 2>&1 | tee -a "$WORK/gobench.log" |
    "$TOOL" gobench >>"$RESULTS" || log "go benchmarks of $1 failed: see $WORK/gobench.log"
}
# query_day_bench [FLOWS_PER_SECOND]: query top, query graph from the flows and from the edge rollups
# over a day of flows stored at that rate (default 50/s; the rate the end-to-end section stored suits),
# from query/bench_test.go; needs the Cassandra of hack/cassandra.sh. Figures: s/query per operation.
query_day_bench() {
  want go || return 0
  BENCH_QUERY_FLOWS_PER_SECOND=${1:-50} go test -run '^$' -bench '^BenchmarkQueryDay$' -benchtime 1x -count "$RUNS" \
    -timeout 60m ./query 2>&1 | tee -a "$WORK/gobench.log" |
    "$TOOL" gobench >>"$RESULTS" || log "query benchmarks failed: see $WORK/gobench.log"
}
gobench ./pcapfile '^BenchmarkReadPcap(|ng|File)$'
gobench ./processor/decode '^BenchmarkDecode$'
gobench ./processor/displayfilter '^BenchmarkMatchMix$'
gobench ./processor/flow '^Benchmark(DecodeAndAggregate|ActiveFlowMemory|ActiveFlowMemoryCIC|TableAdd|TableAddCIC)$'
gobench ./processor/pipeline '^BenchmarkFlowTableAdd$'
gobench ./packetrecord '^Benchmark(Encode|AppendBatchRecord|FlowHash)$'
# The NetFlow/IPFIX collector against nfcapd on one stream: each iteration is a whole stream (-benchtime 1x).
if want go; then
  go test -run '^$' -bench '^BenchmarkCollectVsNfcapd$' -benchtime 1x -count "$RUNS" ./netflow/nfcmd 2>&1 |
    tee -a "$WORK/gobench.log" | "$TOOL" gobench >>"$RESULTS" || log "collector benchmark failed: see $WORK/gobench.log"
fi
# The sensor's capture-to-produce path into the broker, through its own batches and through franz-go's
# per-record path (a record allocated a packet), as it was.
if bash hack/kafka.sh status >/dev/null 2>&1; then
  gobench ./sensor '^BenchmarkPublish$/^(default|franz-go)$'
else
  log "sensor publishing benchmark: skipped, no Kafka running"
fi
if bash hack/cassandra.sh status >/dev/null 2>&1; then
  query_day_bench "${BENCH_QUERY_FLOWS_PER_SECOND:-50}"
else
  log "query top/graph over a day: skipped, no Cassandra running (the e2e section starts one)"
fi
# Fleet scale: the heartbeat engineer's Aggregator and the operator's status path at 1,000 nodes, and
# the controllers' test that a resource's figures are released at most once per interval.
if grep -qs "func BenchmarkObserveFleet" heartbeat/*_test.go; then
  gobench ./heartbeat '^Benchmark(ObserveFleet|SummaryFleet|StatePerPod)$'
fi
if want go && grep -qs "func BenchmarkFleetStatus" controllers/*_test.go; then
  gobench ./controllers '^BenchmarkFleetStatus$'
  passed=0
  go test -count 1 -run '^TestFiguresAtMostOncePerInterval$' ./controllers >>"$WORK/gobench.log" 2>&1 && passed=1
  emit fleet "1,000 nodes" TestFiguresAtMostOncePerInterval passed "$passed"
fi

# ---------------------------------------------------------------- the page
phase "writing $OUT"
first_line() { "$@" 2>&1 | grep -v '^Running as user' | head -1; }
kafka_version=$(sed -n 's/^KAFKA_VERSION=${KAFKA_VERSION:-\(.*\)}$/\1/p' hack/kafka.sh)
load_min=$(sort -n "$WORK/load.txt" | head -1) load_max=$(sort -n "$WORK/load.txt" | tail -1)
cores=$(nproc)
noisy="calm"
awk -v l="$load_max" -v c="$cores" 'BEGIN { exit !(l > c) }' &&
  noisy="**noisy**: the 1-minute load went above the $cores cores (others were building and testing); figures are lower and wider than on an idle machine"
describe_input() {
  local k=$1 f=${FILE[$1]}
  echo "- **$k**: $(basename "$f"), ${NPKT[$k]} packets, $(( NBYTES[$k] / 1000000 )) MB: $(wc -l <"$f.list") captures of \`../shared/pcaps\` ($2) concatenated with \`mergecap -a\`, then repeated to at least $PACKETS packets; list in \`$(realpath --relative-to="$ROOT" "$f.list")\`"
}
{
  echo "## Machine, tools and inputs"
  echo
  echo "- run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(( (SECONDS - T_START) / 60 )) min, $RUNS runs of each figure, capfleet $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes in the checkout)')"
  echo "- machine: $cores cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB memory, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- load average (1 min) sampled at each step: $load_min to $load_max: $noisy"
  echo "- Kafka $kafka_version (one broker, KRaft, hack/kafka.sh) on the same machine; $(first_line java -version)"
  echo "- $(first_line go version), $(first_line tcpdump --version), $(tcpdump --version 2>&1 | sed -n 2p)"
  echo "- $(first_line tshark --version), $(first_line capinfos --version), $(first_line mergecap --version)"
  echo "- $(tcpreplay --version 2>&1 | sed -n 1p) (Debian builds it with debug on), run with \`--no-flow-stats\` (its flow tracking is bookkeeping capfleet does not do); GNU time $(dpkg-query -W -f='${Version}' time 2>/dev/null)"
  echo
  describe_input small "Ethernet, at most 100 bytes per record on average"
  describe_input mix "every Ethernet capture that tcpdump, capinfos and Go read whole"
  echo "- decode against tshark uses the first $TSHARK_PACKETS packets of each input (tshark needs tens of seconds per million packets here); capfleet and tcpdump run on that slice too, so the three are side by side on the same packets"
  echo "- decode fields (capfleet \`--fields\`, tshark \`-e\`): \`$FIELDS\`; tcpdump prints its own default line (\`-nn\`)"
  echo "- replay and capture use a veth pair (MTU 65535, the most a veth takes) in a network namespace made for the run: frames of the mix longer than that (captured with segmentation offload) fail to send with either tool and are counted as failed; the sensor and tcpdump capture on the receiving end while \`tcpreplay --topspeed\` sends the small input, so the offered load is whatever tcpreplay reaches while the capturer (and, for the sensor, Kafka) share the 2 cores; Kafka topics have $PARTITIONS partitions"
  if [ "$E2E_PACKETS" -gt 0 ] && want e2e; then
    echo "- **small-live**: $(basename "${FILE[small-live]}"), the small input's packets with their timestamps rewritten as a live sensor capturing them would stamp them (\`benchtool retime\`: in order, 2 µs apart, from an hour before the input was built; nanosecond pcap). A packet record carries its capture time (the Metron convention) and the processor cuts and indexes blocks by it; the small input is $(wc -l <"${FILE[small]}.list") captures from different years concatenated, so its timestamps jump across years and one Kafka partition's packets spread over many index minutes, which a sensor's own records, in time order, never do"
    echo "- end to end: in each run, the first $E2E_PACKETS packets of an input are put in a topic (3 partitions), then one \`capfleet process\` drains it into the Cassandra of hack/cassandra.sh on the same machine. small and small-live: packets and flows stored, then the input again, looped, at 80 % of the drained rate for $PACED_SECONDS s while it runs (paced: the largest commit lag, the time to catch up after the last send, and the CPU per packet of that phase); mix: packets only, one drain. The rate is packets over the time from the first record consumed (t1) to the last stored and committed (t2). CPU per packet of Cassandra, the broker and \`capfleet process\` counts from t1 to t2 over the drained packets (at start the process creates the keyspace and tables, a one-off cost per keyspace); the process's CPU with its start-up is the \"incl. start-up\" column. Stored B/pkt is the compressed bytes of the packet blocks (\`capfleet_process_block_bytes_written_total\`; the index rows and Cassandra's own overhead not counted) over the packets written; pcap B/pkt is the input file's size over its packets"
    echo "- one flow's packets: after each small-live run, the flow with the most packets (\`query flows -o json\` over the input's time range) is exported with \`capfleet query packets --flow UID --stats -w FILE\`, timed with the wall clock (start-up included), right after the drain and before the paced phase, so the export holds each of the flow's packets once"
  fi
} >"$WORK/machine.md"
mkdir -p "$(dirname "$OUT")"
FINISHED=1
"$TOOL" report --results "$RESULTS" --machine "$WORK/machine.md" --out "$OUT"
log "wrote $OUT in $(( (SECONDS - T_START) / 60 )) min; raw figures in $RESULTS"
