#!/usr/bin/env bash
# The project's whole test run, as `make test` and CI run it: installs what is missing (Debian tools, the
# envtest control plane, Kafka and Cassandra from Maven Central), starts the services, runs every Go test,
# and stops the services it started even when a test fails.
#   GO_TEST_FLAGS   extra flags for go test (e.g. "-run TestX -v")
#   PKGS            packages to test (default ./...)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash hack/deps.sh
KUBEBUILDER_ASSETS=$(bash hack/envtest.sh)
export KUBEBUILDER_ASSETS
# The newest Kubernetes minor the project supports (README, "Install"): the envtest suites run against it
# too, after the whole run against the oldest (hack/envtest.sh's default).
KUBE_NEWEST=${KUBE_NEWEST:-v1.37.2}
NEWEST_ASSETS=$(KUBE_VERSION=$KUBE_NEWEST bash hack/envtest.sh)
# helm lints and renders the chart in test/install; built once from its Go module, cached.
bash hack/helm.sh >/dev/null

started=()
cleanup() {
  local rc=$?
  for s in "${started[@]}"; do bash "hack/$s.sh" stop || log "stopping $s failed"; done
  exit $rc
}
trap cleanup EXIT INT TERM

# Kafka and Cassandra start side by side: each script waits until its service answers.
pids=()
for s in kafka cassandra; do
  if bash "hack/$s.sh" status >/dev/null 2>&1; then
    log "$s already running; leaving it running afterwards"
    continue
  fi
  started+=("$s")
  bash "hack/$s.sh" start & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a service failed to start (see .run/*.log)"; done

log "go vet"
go vet ./...
log "go test"
rm -f .cache/displayfilter-parity.txt .cache/tshark-parity.txt .cache/cicflowmeter-parity.txt
# -p 1: packages share one broker, one Cassandra and the machine's two cores; paced tests need calm.
go test -count=1 -p 1 -timeout 60m ${GO_TEST_FLAGS:-} ${PKGS:-./...}
# The display-filter parity figures and time (go test hides a passing test's log).
[ -f .cache/displayfilter-parity.txt ] && cat .cache/displayfilter-parity.txt
# The decode parity with tshark per field, and the captures that lose the most pairs.
[ -f .cache/tshark-parity.txt ] && cat .cache/tshark-parity.txt
# The CIC flow features against the PyPI cicflowmeter, per column.
[ -f .cache/cicflowmeter-parity.txt ] && cat .cache/cicflowmeter-parity.txt

log "envtest suites against Kubernetes $KUBE_NEWEST"
KUBEBUILDER_ASSETS=$NEWEST_ASSETS go test -count=1 -p 1 -timeout 20m ./controllers/... ./test/install/

# The race detector over the packages whose goroutines share state: the pipeline's background block
# writes, the store's writer slots, the block pool.
log "go test -race (pipeline, store, block)"
go test -race -count=1 -p 1 -timeout 20m ./processor/block/ ./processor/store/ ./processor/pipeline/

# A short run of every fuzz target, from its seeds (real captures and blocks): a crasher found here fails CI
# and is written under the package's testdata/fuzz for the fix to replay.
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with "context deadline exceeded"
# when a duration ends while a worker is busy (golang/go#75804, fixed in Go 1.27); a count has no deadline.
log "fuzz: ${FUZZ_TIME:-50000x} per target"
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  pkg=./$(dirname "${f#./}")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
    go test -run '^$' -fuzz "^$target\$" -fuzztime "${FUZZ_TIME:-50000x}" -fuzzminimizetime 5s "$pkg"
  done
done
