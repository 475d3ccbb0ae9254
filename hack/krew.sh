#!/usr/bin/env bash
# hack/krew.sh [tools|plugin]
#   tools   build krew from its Go module (cached in .cache/krew/$KREW_VERSION) and print its path
#   plugin  build the kubectl-capfleet archive (linux amd64; the binary compiles BPF filters with
#           libpcap and links liblz4, so the plugin needs both on the user's machine: libpcap0.8 and
#           liblz4-1 on Debian and Ubuntu) into dist/, and write dist/krew/capfleet.yaml from plugins/capfleet.yaml with their
#           SHA-256 sums (`make plugin`); DIST=DIR writes them there instead
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
KREW_VERSION=${KREW_VERSION:-v0.4.3}

tools() {
  local d=$CACHE/krew/$KREW_VERSION
  if [ ! -x "$d/krew" ]; then
    log "building krew $KREW_VERSION from its Go module"
    mkdir -p "$d"
    GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN=$d go install "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION"
  fi
  echo "$d/krew"
}

plugin() {
  local version=${VERSION:-v0.1.0} out=${DIST:-dist} arch tmp sums=""
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$out/krew"
  for arch in amd64; do
    mkdir -p "$tmp/$arch"
    GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$tmp/$arch/kubectl-capfleet" ./cmd/capfleet
    # Fixed owner, mode and time: the same source gives the same archive and sum.
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp/$arch" -czf "$out/kubectl-capfleet_linux_$arch.tar.gz" kubectl-capfleet
    sums="$sums -e s/SHA256_linux_$arch/$(sha256sum "$out/kubectl-capfleet_linux_$arch.tar.gz" | cut -d' ' -f1)/"
  done
  # shellcheck disable=SC2086
  sed -e "s/VERSION/$version/g" $sums plugins/capfleet.yaml >"$out/krew/capfleet.yaml"
  log "$out/krew/capfleet.yaml and $out/kubectl-capfleet_linux_amd64.tar.gz"
}

case ${1:-plugin} in
  tools) tools ;;
  plugin) plugin ;;
  *) die "usage: $0 [tools|plugin]" ;;
esac
