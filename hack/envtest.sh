#!/usr/bin/env bash
# Installs the envtest control plane without any download site:
#   kube-apiserver and kubectl built from the k8s.io/kubernetes Go module,
#   etcd from Debian's etcd-server package (unpacked, not installed).
# Prints the KUBEBUILDER_ASSETS folder on stdout. Cached in .cache/kube/$KUBE_VERSION.
#   hack/envtest.sh            install (if missing) and print the assets folder
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ASSETS=$CACHE/kube/$KUBE_VERSION
CMDS=${KUBE_CMDS:-kube-apiserver kubectl}

build_kube() {
  local b=$CACHE/kube/build-$KUBE_VERSION staging=v0.${KUBE_VERSION#v1.} upstream missing=""
  for c in $CMDS; do [ -x "$ASSETS/$c" ] || missing="$missing $c"; done
  [ -n "$missing" ] || return 0
  mkdir -p "$b" "$ASSETS"
  cd "$b"
  export GOFLAGS=-buildvcs=false CGO_ENABLED=0
  upstream=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # k8s.io/kubernetes points its staging modules at ./staging; map each to its published release instead.
  {
    printf 'module capfleet.local/kubebuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
    sed -n '/^replace (/,/^)/p' "$upstream" | awk '/=> \.\/staging/{print $1}' | grep -v '^k8s.io/sample-' |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
    printf ')\n'
  } >go.mod
  printf 'package main\n\nfunc main() {}\n' >main.go
  log "resolving k8s.io/kubernetes $KUBE_VERSION"
  go get $(for c in $missing; do echo "k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"; done) >/dev/null 2>&1
  # Without these stamps kubectl cannot parse the server version.
  local maj=${KUBE_VERSION#v} min ld="-s -w" p
  maj=${maj%%.*}; min=$(echo "$KUBE_VERSION" | cut -d. -f2)
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean"
    ld="$ld -X $p.gitCommit=0000000000000000000000000000000000000000"
  done
  for c in $missing; do
    log "building $c (a few minutes the first time)"
    go build -ldflags "$ld" -o "$ASSETS/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$ASSETS/$c.tmp" "$ASSETS/$c"
  done
}

install_etcd() {
  [ -x "$ASSETS/etcd" ] && return 0
  [ -x "$CACHE/debroot/usr/bin/etcd" ] || debian_extract etcd-server
  cp "$CACHE/debroot/usr/bin/etcd" "$ASSETS/etcd"
}

mkdir -p "$ASSETS"
build_kube
install_etcd
echo "$ASSETS"
