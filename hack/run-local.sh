#!/usr/bin/env bash
# The main job, locally: a real kube-apiserver and etcd (no nodes), capfleet's CRDs, the operator running
# against them, and the samples applied; prints `kubectl get capfleet` and the children the operator made.
# KEEP=1 leaves everything running (stop with: kill the manager PID in .run/manager.pid; hack/controlplane.sh stop).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ASSETS=$(bash hack/envtest.sh)
KUBECTL="$ASSETS/kubectl --kubeconfig $RUN/kube/admin.conf"

cleanup() {
  [ "${KEEP:-}" = 1 ] && { log "left running: manager (.run/manager.pid), control plane (hack/controlplane.sh stop)"; return; }
  stop_pid manager
  bash hack/controlplane.sh stop
}
trap cleanup EXIT

bash hack/controlplane.sh start
$KUBECTL apply -k config/crd
$KUBECTL wait --for=condition=Established crd --all --timeout=60s >/dev/null

start_bg manager bin/capfleet manager --kubeconfig "$RUN/kube/admin.conf" \
  --metrics-bind-address=0 --health-probe-bind-address=127.0.0.1:18081 \
  --kafka-brokers=127.0.0.1:9092 --manage-topics=false --cassandra-hosts=127.0.0.1 --image=capfleet:dev
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18081/readyz >/dev/null && break; sleep 0.2; done
log "operator running (log: .run/manager.log)"

$KUBECTL create configmap sample-captures --from-file=http.pcap=testdata/http.pcap --dry-run=client -o yaml | $KUBECTL apply -f -
$KUBECTL apply -k config/samples
for _ in $(seq 1 50); do
  [ "$($KUBECTL get capfleet -A -o jsonpath='{range .items[*]}{.status.observedGeneration}{" "}{end}' | wc -w)" -ge 3 ] && break
  sleep 0.2
done
echo
$KUBECTL get capfleet -A
echo
$KUBECTL get daemonsets,deployments,jobs -A -l app.kubernetes.io/part-of=capfleet
echo
echo "(no kubelet runs here, so no pod becomes ready; 'make demo' runs the same on a real node)"
