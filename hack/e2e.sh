#!/usr/bin/env bash
# hack/e2e.sh : the end-to-end test (test/e2e, build tag e2e) on the local node.
# Brings up what it needs (hack/demo.sh infra: node, Kafka, Cassandra, image, operator), runs the test,
# and takes down what it brought up: the node always when it was not running before, Kafka and Cassandra
# only when this run started them. E2E_KEEP=1 leaves everything running for a look afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
was_up=0
bash hack/local-cluster.sh status >/dev/null 2>&1 && was_up=1
teardown() {
  [ "${E2E_KEEP:-0}" = 1 ] && { log "E2E_KEEP=1: left running; hack/demo.sh down stops it"; return; }
  [ $was_up = 1 ] && return
  bash hack/demo.sh down
}
trap teardown EXIT
t=$(date +%s)
# The demo installs the operator with kustomize; the e2e test with the Helm chart, so both paths run.
INSTALL_WITH=${INSTALL_WITH:-helm} bash hack/demo.sh infra
# The tests count the workloads on the node and read the first sensor's and processor's node ports
# (9090/9091, 9290/9291): another capfleet workload on the node, such as the demo's, would take them.
others=$(kubectl --kubeconfig "$RUN/local-cluster/kubeconfig" get pods -A \
  -l 'app.kubernetes.io/name=capfleet,app.kubernetes.io/component notin (manager,ui)' \
  --field-selector=status.phase=Running -o name 2>/dev/null || true)
[ -z "$others" ] || die "capfleet workloads already run on the local node (make demo-down first):
$others"
log "infrastructure ready in $(($(date +%s) - t))s; running test/e2e"
t=$(date +%s)
go test -tags e2e -count=1 -v -timeout 20m ./test/e2e/ 2>&1 | tee "$RUN/e2e.log" | grep -E '^(=== RUN|--- |\s+---|PASS|FAIL|ok|panic)|_test.go:'
rc=${PIPESTATUS[0]}
log "test/e2e finished in $(($(date +%s) - t))s (rc $rc, full log $RUN/e2e.log)"
exit "$rc"
