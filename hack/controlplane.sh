#!/usr/bin/env bash
# hack/controlplane.sh start|stop|status : etcd and kube-apiserver on 127.0.0.1:6443 (no nodes), from the
# binaries hack/envtest.sh installs. An admin kubeconfig is written to .run/kube/admin.conf.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
K=$RUN/kube
PKI=$K/pki
PORT=${KUBE_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-2479}

pki() {
  [ -f "$PKI/admin.crt" ] && return 0
  # shellcheck disable=SC2034 # PKI_KEY is read by the pki_* helpers of hack/lib.sh
  local PKI_KEY=rsa
  { pki_ca "$PKI" /CN=capfleet-local-ca &&
    pki_cert "$PKI" apiserver /CN=kube-apiserver serverAuth IP:127.0.0.1,DNS:localhost &&
    pki_cert "$PKI" admin /O=system:masters/CN=admin clientAuth &&
    pki_signing_key "$PKI" sa; } || die "openssl could not make the control plane's certificates"
}

ready() { kube_ready "$PKI" "$PORT"; }

start() {
  if running apiserver && ready; then log "already running"; return 0; fi
  local assets; assets=$(bash "$(dirname "$0")/envtest.sh")
  mkdir -p "$K"; pki; kube_config "$K/admin.conf" "$PKI" "$PORT" local admin
  start_etcd etcd "$assets/etcd" "$K/etcd" capfleet "$ETCD_PORT"
  start_apiserver apiserver "$assets/kube-apiserver" "$PKI" "$PORT" "$ETCD_PORT" --authorization-mode=RBAC
  wait_for "kube-apiserver ready" 60 apiserver ready
  log "API server ready on 127.0.0.1:$PORT (kubeconfig $K/admin.conf)"
}

stop() { stop_pid apiserver; stop_pid etcd; rm -rf "$K"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running apiserver && ready ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
