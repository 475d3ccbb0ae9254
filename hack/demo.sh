#!/usr/bin/env bash
# hack/demo.sh [up|infra|down] : capfleet on a real node of this machine, end to end.
#   up    local node + Kafka + Cassandra, the image, the operator (config/local); a veth pair; a
#         CaptureSensor on one end, a PacketPipeline storing flows in Cassandra, and a ReplayJob replaying
#         testdata/ftp-bruteforce.pcap onto the other end; `kubectl get capfleet` while it runs; the flows
#         stored, read back with `capfleet query flows`.
#   infra only the node, Kafka, Cassandra, the image and the operator (what hack/e2e.sh needs)
#   down  removes all of it. Kafka and Cassandra are stopped only when this script started them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NS=capfleet-demo
TX=cfdemo-tx
RX=cfdemo-rx
STATE=$RUN/demo
export KUBECONFIG=$RUN/local-cluster/kubeconfig
INSTALL_WITH=${INSTALL_WITH:-kustomize}
export PATH=$CACHE/kube/${KUBE_VERSION:-v1.34.4}:$PATH

# step TITLE WHERE-TO-LOOK FUNCTION : run one step, say how long it took, and where to look if it failed.
step() {
  local title=$1 hint=$2 t
  shift 2
  echo
  echo "==> $title"
  t=$(now)
  # In a subshell outside any `if`, so that set -e stops the step at its first failing command.
  set +e
  (set -e; "$@")
  local rc=$?
  set -e
  if [ $rc != 0 ]; then
    echo "==> FAILED: $title after $(took "$t")s. Look at: $hint" >&2
    exit 1
  fi
  echo "    done in $(took "$t")s"
}

services() {
  mkdir -p "$STATE"
  local pids=()
  # Both may already run for someone else's tests on this machine: reuse them, and leave them running.
  if ! bash "$ROOT/hack/kafka.sh" status >/dev/null 2>&1; then
    touch "$STATE/started-kafka"; bash "$ROOT/hack/kafka.sh" start & pids+=($!)
  fi
  if ! bash "$ROOT/hack/cassandra.sh" status >/dev/null 2>&1; then
    touch "$STATE/started-cassandra"; bash "$ROOT/hack/cassandra.sh" start & pids+=($!)
  fi
  local p rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

# operator: the CRDs and the operator, with kustomize (config/local) or, with INSTALL_WITH=helm (what the
# e2e test uses), the Helm chart with ci/local-values.yaml; both install the same objects under the same
# names (test/install checks it), so `down` removes either.
operator() {
  if [ "$INSTALL_WITH" = helm ]; then
    local helm
    helm=$(bash "$ROOT/hack/helm.sh")
    # hostNetwork is not allowed by the "restricted" Pod Security level; helm cannot label a namespace it
    # creates, so the namespace is made here.
    kubectl create namespace capfleet-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl label --overwrite namespace capfleet-system pod-security.kubernetes.io/enforce=privileged >/dev/null
    # --take-ownership: a node where config/local was applied before moves to the chart in place.
    "$helm" upgrade --install capfleet "$ROOT/charts/capfleet" --namespace capfleet-system --take-ownership \
      -f "$ROOT/charts/capfleet/ci/local-values.yaml" --wait --timeout 5m >/dev/null
  else
    kubectl apply -k "$ROOT/config/local" >/dev/null
  fi
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
  # A new image under the same tag is only picked up by a new pod.
  kubectl -n capfleet-system rollout restart deploy/capfleet-manager >/dev/null
  kubectl -n capfleet-system rollout status deploy/capfleet-manager --timeout=180s
}

# veth: the replay sends on TX and the sensor captures on RX. No addresses, forwarding and IPv6 off on both
# ends: the replayed frames reach capture sockets and nothing else (no routing, no neighbour discovery).
veth() {
  ip link show "$TX" >/dev/null 2>&1 || ip link add "$TX" type veth peer name "$RX"
  local i
  for i in "$TX" "$RX"; do
    sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1" "net.ipv4.conf.$i.forwarding=0"
    ip addr flush dev "$i"
    ip link set "$i" up
  done
  ip -br link show type veth | grep -E "^($TX|$RX)@"
}

resources() {
  mkdir -p "$STATE"
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # The processors log in to Cassandra with the role hack/cassandra.sh created; mounted as files.
  kubectl -n "$NS" create secret generic cassandra-creds --from-file="$RUN/cassandra/client-secret/" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$NS" create configmap demo-captures --from-file=ftp-bruteforce.pcap="$ROOT/testdata/ftp-bruteforce.pcap" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # A keyspace per demo (kept until demo-down): tables an older build created would not match a newer one.
  [ -f "$STATE/keyspace" ] || echo "capfleet_demo_$(date +%s)" >"$STATE/keyspace"
  kubectl -n "$NS" apply -f "$ROOT/config/local/demo/sensor.yaml"
  sed "s/keyspace: capfleet_demo/keyspace: $(cat "$STATE/keyspace")/" "$ROOT/config/local/demo/pipeline.yaml" | kubectl -n "$NS" apply -f -
  kubectl -n "$NS" wait --for=condition=Ready capturesensor/demo packetpipeline/demo-flows --timeout=180s
  kubectl -n "$NS" get pods -o wide
}

replay() {
  # A fresh run each time: the ReplayJob is a one-shot.
  kubectl -n "$NS" delete replayjob ftp-bruteforce --ignore-not-found --wait=true >/dev/null
  date -u +%Y-%m-%dT%H:%M:%SZ >"$STATE/replay-start"
  kubectl -n "$NS" apply -f "$ROOT/config/local/demo/replay.yaml"
  local phase="" end=$((SECONDS + 300))
  while [ $SECONDS -lt $end ]; do
    sleep 3
    echo "--- $(date +%T) kubectl get capfleet -n $NS"
    kubectl -n "$NS" get capfleet
    phase=$(kubectl -n "$NS" get replayjob ftp-bruteforce -o jsonpath='{.status.phase}')
    case $phase in Succeeded) break ;; Failed) kubectl -n "$NS" describe replayjob ftp-bruteforce; return 1 ;; esac
  done
  [ "$phase" = Succeeded ] || return 1
  kubectl -n "$NS" logs "job/$(kubectl -n "$NS" get replayjob ftp-bruteforce -o jsonpath='{.status.job}')" | tail -6
}

metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'; }

# results: every packet the replay sent was captured, published and stored; then the flows, read back.
results() {
  local want end captured published written flows open
  want=$(capinfos -c -M "$ROOT/testdata/ftp-bruteforce.pcap" | awk '/Number of packets/ {print $NF}')
  end=$((SECONDS + 120))
  while :; do
    captured=$(metric 9090 'capfleet_sensor_packets_total{interface="'$RX'",outcome="captured"}')
    published=$(metric 9090 'capfleet_sensor_packets_total{interface="'$RX'",outcome="published"}')
    written=$(metric 9290 'capfleet_process_packets_written_total')
    flows=$(metric 9290 'capfleet_process_flows_written_total')
    open=$(metric 9290 'capfleet_process_flows_active')
    # Flows close 5 s (the pipeline's idleTimeout) after their last packet.
    [ "$written" -ge "$want" ] && [ "$flows" -gt 0 ] && [ "$open" = 0 ] && break
    [ $SECONDS -lt $end ] || break
    sleep 2
  done
  echo "    file: $want packets; sensor captured $captured, published $published; pipeline stored $written packets and $flows flows"
  echo "    (counters since the pods started; a second run adds to them)"
  [ "$published" -ge "$want" ] && [ "$written" -ge "$want" ] && [ "$flows" -gt 0 ] ||
    { echo "    not every packet made it: see the sensor's and the processor's logs" >&2; return 1; }
  # The stored packets read back from their blocks, as an analyst exports them.
  local back
  back=$("$ROOT/bin/capfleet" query packets --keyspace "$(cat "$STATE/keyspace")" --sensor demo --from "$(cat "$STATE/replay-start")" \
    --cassandra-hosts 127.0.0.1 --cassandra-secret-dir "$RUN/cassandra/client-secret" --stats -w "$STATE/stored.pcap" 2>&1) ||
    { echo "$back" >&2; return 1; }
  echo "    capfleet query packets --sensor demo -w $STATE/stored.pcap: $(echo "$back" | tr '\n' ';' | sed 's/;$//; s/;/; /')"
  [ "$(echo "$back" | awk '/^wrote/ {print $2}')" -ge "$want" ] ||
    { echo "    fewer packets read back than the file holds" >&2; return 1; }
  echo
  echo "    capfleet query flows --keyspace $(cat "$STATE/keyspace") --from $(cat "$STATE/replay-start")   (most bytes first)"
  "$ROOT/bin/capfleet" query flows --keyspace "$(cat "$STATE/keyspace")" --from "$(cat "$STATE/replay-start")" \
    --cassandra-hosts 127.0.0.1 --cassandra-secret-dir "$RUN/cassandra/client-secret" -o table |
    awk 'NR == 1 {print; next} {split($7, b, "/"); print b[1] + b[2] "\t" $0 | "sort -rn | cut -f2- | head -15"}' 
}

# infra: the node, Kafka, Cassandra, the image and the operator; what the demo and the e2e test stand on.
infra() {
  step "Debian packages (libpcap, tcpdump, tshark)" "output above" bash "$ROOT/hack/deps.sh"
  step "Local node: etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet on 127.0.0.1" \
    "$RUN/lc-*.log" bash "$ROOT/hack/local-cluster.sh" up
  step "Kafka (127.0.0.1:9092) and Cassandra (127.0.0.1:9042)" "$RUN/kafka.log, $RUN/cassandra.log" services
  step "Image capfleet:dev (bin/capfleet + its libraries), checked and loaded into the node" "output above" \
    bash "$ROOT/hack/local-cluster.sh" image
  step "CRDs and the operator ($([ "$INSTALL_WITH" = helm ] && echo "helm upgrade --install charts/capfleet" || echo "kubectl apply -k config/local"))" \
    "kubectl -n capfleet-system logs deploy/capfleet-manager" operator
}

# webview: the UI's Cassandra login, and a viewer account that may read the demo's capture resources
# (and so their stored data, as the UI asks the API server on each request).
webview() {
  kubectl -n capfleet-system create secret generic capfleet-ui-cassandra --from-file="$RUN/cassandra/client-secret/" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n capfleet-system rollout restart deploy/capfleet-ui >/dev/null
  kubectl -n capfleet-system rollout status deploy/capfleet-ui --timeout=120s
  kubectl -n "$NS" create serviceaccount viewer --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$NS" create role capture-reader --verb=get,list,watch \
    --resource=capturesensors.capture.capfleet.dev,packetpipelines.capture.capfleet.dev,replayjobs.capture.capfleet.dev \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$NS" create rolebinding viewer --role=capture-reader --serviceaccount="$NS:viewer" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

up() {
  local t0
  t0=$(now)
  infra
  step "veth pair $TX <-> $RX" "ip link" veth
  step "CaptureSensor on $RX, PacketPipeline into Cassandra" \
    "kubectl -n $NS describe capturesensor,packetpipeline; kubectl -n $NS logs -l app.kubernetes.io/name=capfleet" resources
  step "ReplayJob: testdata/ftp-bruteforce.pcap onto $TX at 40 packets/s" \
    "kubectl -n $NS describe replayjob ftp-bruteforce; kubectl -n $NS logs -l app.kubernetes.io/component=replay" replay
  step "What was captured and stored" "kubectl -n $NS logs deploy/demo-flows-processor" results
  step "The web view (capfleet ui) and a viewer account" "kubectl -n capfleet-system logs deploy/capfleet-ui" webview
  echo
  echo "Demo up in $(took "$t0")s. export KUBECONFIG=$KUBECONFIG; kubectl get capfleet -A. Stop all: make demo-down"
  echo "The web view:"
  echo "  kubectl -n capfleet-system port-forward svc/capfleet-ui 8080:80"
  echo "  open http://127.0.0.1:8080 and paste the token of: kubectl -n $NS create token viewer"
}

down() {
  local t
  t=$(now)
  if bash "$ROOT/hack/local-cluster.sh" status >/dev/null 2>&1; then
    kubectl delete namespace "$NS" --ignore-not-found --timeout=120s || true
    kubectl delete -k "$ROOT/config/local" --ignore-not-found --timeout=120s >/dev/null || true
  fi
  bash "$ROOT/hack/local-cluster.sh" down
  ip link show "$TX" >/dev/null 2>&1 && ip link del "$TX"
  [ -f "$STATE/started-kafka" ] && bash "$ROOT/hack/kafka.sh" stop
  [ -f "$STATE/started-cassandra" ] && bash "$ROOT/hack/cassandra.sh" stop
  rm -rf "$STATE"
  log "demo down in $(took "$t")s"
}

case "${1:-up}" in
  up) up ;;
  infra) infra ;;
  down) down ;;
  *) echo "usage: $0 [up|infra|down]" >&2; exit 2 ;;
esac
