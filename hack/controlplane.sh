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

kubeconfig() {
  cat >"$K/admin.conf" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: $PKI/ca.crt}
users:
- name: admin
  user: {client-certificate: $PKI/admin.crt, client-key: $PKI/admin.key}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
}

ready() { curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; }

start() {
  if running apiserver && ready; then log "already running"; return 0; fi
  local assets; assets=$(bash "$(dirname "$0")/envtest.sh")
  mkdir -p "$K"; pki; kubeconfig
  start_bg etcd "$assets/etcd" --name capfleet --data-dir "$K/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "capfleet=http://127.0.0.1:$((ETCD_PORT + 1))"
  start_bg apiserver "$assets/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer="https://127.0.0.1:$PORT" --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=RBAC --profiling=false
  for _ in $(seq 1 600); do
    ready && { log "API server ready on 127.0.0.1:$PORT (kubeconfig $K/admin.conf)"; return 0; }
    running apiserver || { tail -20 "$RUN/apiserver.log" >&2; die "kube-apiserver exited"; }
    sleep 0.1
  done
  die "kube-apiserver not ready after 60 s"
}

stop() { stop_pid apiserver; stop_pid etcd; rm -rf "$K"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running apiserver && ready ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
