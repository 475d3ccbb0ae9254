#!/usr/bin/env bash
# Installs helm without any download site: built from its Go module (helm.sh/helm/v4) at a pinned
# version, cached in .cache/helm/$HELM_VERSION. Prints the binary's path on stdout.
# The chart tests (charts/capfleet) lint and render the chart with it; hack/demo.sh installs with it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HELM_VERSION=${HELM_VERSION:-v4.3.2}
bin=$CACHE/helm/$HELM_VERSION/helm
if [ ! -x "$bin" ]; then
  log "building helm $HELM_VERSION from its Go module (a few minutes the first time)"
  mkdir -p "$(dirname "$bin")"
  # helm prints this as its version; without it `helm version` says "unknown".
  GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN=$(dirname "$bin") \
    go install -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
echo "$bin"
