#!/usr/bin/env bash
# hack/local-cluster.sh up|down|status|image|load TARBALL : a real single-node Kubernetes on 127.0.0.1.
#   image   builds bin/capfleet into bin/capfleet-image.tar ($IMAGE, default capfleet:dev) and loads it
#
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, containerd and runc, built from the
# k8s.io/kubernetes Go module (hack/envtest.sh) and Debian packages (unpacked, not installed), cached in
# .cache/ and reused. State, logs and PIDs live in .run/local-cluster/ (lc-* PID files in .run/).
# Every pod runs in the host network: there is no CNI and no kube-proxy, so pods reach the API server at
# 127.0.0.1:6443 (its certificate carries that IP). `down` stops what `up` started, by PID, and removes
# what kubelet and containerd create outside their folders.
#
# Kubeconfig for users:  export KUBECONFIG=$PWD/.run/local-cluster/kubeconfig
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ASSETS=$CACHE/kube/$KUBE_VERSION
LC=$RUN/local-cluster
PKI=$LC/pki
KUBECONFIG_FILE=$LC/kubeconfig
DEB=$CACHE/debroot
NODE=127.0.0.1 # kubelet refuses --node-ip=127.0.0.1, but takes the IP as its name and then as InternalIP
PAUSE_IMAGE=capfleet.local/pause:1
IMAGE=${IMAGE:-capfleet:dev}
PORTS="6443 2379 2380 10250 10248 10257 10259"
SOCK=$LC/containerd/containerd.sock
ctr_() { "$DEB/usr/bin/ctr" --address "$SOCK" -n k8s.io "$@"; }
kc() { "$ASSETS/kubectl" --kubeconfig="$KUBECONFIG_FILE" "$@"; }

install() {
  local t
  t=$(now)
  ASSETS=$(KUBE_CMDS="kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet" bash "$ROOT/hack/envtest.sh")
  [ -x "$DEB/usr/bin/containerd" ] && [ -x "$DEB/usr/sbin/runc" ] && [ -x "$DEB/usr/lib/cni/loopback" ] ||
    debian_extract containerd runc containernetworking-plugins
  local img=$CACHE/images/pause-1.tar
  if [ ! -f "$img" ]; then
    mkdir -p "$CACHE/images"
    CGO_ENABLED=0 go build -ldflags '-s -w' -o "$CACHE/images/pause" "$ROOT/hack/imgbuild/pause"
    go run "$ROOT/hack/imgbuild" -tag "$PAUSE_IMAGE" -out "$img.tmp" -add "$CACHE/images/pause:/pause"
    mv "$img.tmp" "$img"
  fi
  log "binaries ready in $(took "$t")s ($ASSETS, $DEB)"
}

pki() {
  [ -f "$PKI/kubelet-serving.crt" ] && return 0
  # shellcheck disable=SC2034 # PKI_KEY is read by the pki_* helpers of hack/lib.sh
  local PKI_KEY=rsa both=serverAuth,clientAuth
  { pki_ca "$PKI" /CN=capfleet-local-cluster-ca &&
    pki_cert "$PKI" apiserver /CN=kube-apiserver "$both" \
      IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc &&
    pki_cert "$PKI" admin /O=system:masters/CN=admin clientAuth &&
    pki_cert "$PKI" apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client clientAuth &&
    pki_cert "$PKI" controller-manager /CN=system:kube-controller-manager clientAuth &&
    pki_cert "$PKI" scheduler /CN=system:kube-scheduler clientAuth &&
    pki_cert "$PKI" kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth &&
    pki_cert "$PKI" kubelet-serving "/CN=$NODE" "$both" IP:127.0.0.1,DNS:localhost &&
    pki_signing_key "$PKI" sa; } || die "openssl could not make the cluster's certificates"
}

kubeconfigs() {
  local id file
  for id in admin controller-manager scheduler kubelet; do
    file=$LC/$id.conf; [ "$id" = admin ] && file=$KUBECONFIG_FILE
    kube_config "$file" "$PKI" 6443 capfleet-local "$id"
  done
}

configs() {
  mkdir -p "$LC/cni" "$LC/pod-logs" "$LC/kubelet"
  # Only so containerd reports the network ready: every pod is hostNetwork, so no CNI ADD ever runs.
  echo '{"cniVersion":"0.4.0","name":"capfleet-loopback","plugins":[{"type":"loopback"}]}' >"$LC/cni/99-loopback.conflist"
  cat >"$LC/containerd.toml" <<EOF
version = 2
root = "$LC/containerd/root"
state = "$LC/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    # This VM lacks CAP_SYS_RESOURCE: without it runc cannot lower oom_score_adj and fails the sandbox.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "$DEB/usr/sbin/runc"
          Root = "$LC/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$DEB/usr/lib/cni"
      conf_dir = "$LC/cni"
EOF
  # cgroup v1 with containerd 1.6 needs failCgroupV1=false (1.35 is the last kubelet that allows it).
  # Eviction and image GC are set so a busy shared disk never evicts the demo or deletes its imported image.
  cat >"$LC/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
podLogsDir: $LC/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
}

ports_free() {
  local p busy=""
  for p in $PORTS; do ss -Hltn "sport = :$p" | grep -q . && busy="$busy $p"; done
  [ -z "$busy" ] || die "ports in use:$busy (is hack/controlplane.sh running? stop it, or find the owner with: ss -ltnp)"
}

node_ready() { kc get node "$NODE" --no-headers | grep -q ' Ready'; }

up() {
  local t0 t
  t0=$(now)
  if running lc-kubelet && node_ready 2>/dev/null; then log "already up; export KUBECONFIG=$KUBECONFIG_FILE"; return 0; fi
  install
  ports_free
  mkdir -p "$LC"; pki; kubeconfigs; configs
  t=$(now)
  start_etcd lc-etcd "$ASSETS/etcd" "$LC/etcd" capfleet-local 2379
  start_apiserver lc-apiserver "$ASSETS/kube-apiserver" "$PKI" 6443 2379 \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP
  wait_for "kube-apiserver ready" 180 lc-apiserver kube_ready "$PKI" 6443
  log "etcd + kube-apiserver ready in $(took "$t")s"

  t=$(now)
  # containerd finds its shim (containerd-shim-runc-v2) on PATH.
  PATH=$DEB/usr/bin:$PATH start_bg lc-containerd "$DEB/usr/bin/containerd" --config "$LC/containerd.toml"
  wait_for "containerd socket" 60 lc-containerd test -S "$SOCK"
  ctr_ images import "$CACHE/images/pause-1.tar" >/dev/null
  start_bg lc-kcm "$ASSETS/kube-controller-manager" --kubeconfig="$LC/controller-manager.conf" \
    --authentication-kubeconfig="$LC/controller-manager.conf" --authorization-kubeconfig="$LC/controller-manager.conf" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range=10.0.0.0/24
  start_bg lc-scheduler "$ASSETS/kube-scheduler" --kubeconfig="$LC/scheduler.conf" \
    --authentication-kubeconfig="$LC/scheduler.conf" --authorization-kubeconfig="$LC/scheduler.conf" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
  start_bg lc-kubelet "$ASSETS/kubelet" --config="$LC/kubelet.yaml" \
    --kubeconfig="$LC/kubelet.conf" --root-dir="$LC/kubelet" --hostname-override="$NODE"
  wait_for "node Ready" 180 lc-kubelet node_ready
  wait_for "default service account" 120 lc-kcm kc get serviceaccount default
  log "node $NODE Ready in $(took "$t")s after its daemons started; whole 'up' took $(took "$t0")s"
  log "export KUBECONFIG=$KUBECONFIG_FILE"
}

# load TARBALL... : import docker-archive images into the node's containerd (what kubelet runs).
load() {
  [ -S "$SOCK" ] || die "the local cluster is not up: run hack/local-cluster.sh up"
  local f
  for f in "$@"; do ctr_ images import "$f" >/dev/null && log "loaded $f"; done
}

# image: build bin/capfleet and its image (the binary plus the shared libraries it loads), check the binary
# runs inside that image's file system alone, and load it into the node.
image() {
  local t out=$ROOT/bin/capfleet-image.tar check
  t=$(now)
  mkdir -p "$ROOT/bin"
  (cd "$ROOT" && go build -o bin/capfleet ./cmd/capfleet)
  (cd "$ROOT" && go run ./hack/imgbuild -tag "$IMAGE" -out "$out" -add bin/capfleet:/capfleet -with-libs)
  check=$(mktemp -d)
  tar -xf "$out" -C "$check"
  for l in "$check"/*.tar.gz; do mkdir -p "$check/rootfs"; tar -xzf "$l" -C "$check/rootfs"; done
  chroot "$check/rootfs" /capfleet --help >/dev/null || { rm -rf "$check"; die "bin/capfleet does not run inside its image"; }
  rm -rf "$check"
  log "image $IMAGE built and checked in $(took "$t")s: $out"
  if [ -S "$SOCK" ]; then load "$out"; fi
}

# our_shims: PIDs of containerd shims serving our containerd (their command line names our socket).
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $SOCK" && echo "${p#/proc/}"
  done
  return 0
}

down() {
  set +e
  local t p
  t=$(now)
  # Without kubelet, nothing restarts pods: stop it first, then the tasks and their shims.
  for p in lc-kubelet lc-scheduler lc-kcm; do stop_pid "$p"; done
  if running lc-containerd; then
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1; done
    sleep 1
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$c" >/dev/null 2>&1; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
  fi
  stop_pid lc-containerd
  for p in $(our_shims); do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in $(our_shims); do kill -9 "$p" 2>/dev/null; done
  stop_pid lc-apiserver
  stop_pid lc-etcd
  # Mounts under our folder (overlay rootfs, shm, secret and projected volumes), deepest first.
  awk -v d="$LC/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  # Paths kubelet and the shim create whatever their configured folders are.
  for c in /sys/fs/cgroup/*/kubepods; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  find /var/log/containers -maxdepth 1 -type l -lname "$LC/*" -delete 2>/dev/null
  rmdir /var/log/containers 2>/dev/null
  if ! pgrep -x kubelet >/dev/null; then rm -rf /var/lib/kubelet/device-plugins /var/lib/kubelet/plugins_registry /var/lib/kubelet/plugins /var/lib/kubelet/pod-resources; rmdir /var/lib/kubelet 2>/dev/null; fi
  if ! pgrep -x containerd >/dev/null; then rm -rf /run/containerd/s /run/containerd/io.containerd.runtime.v2.task /run/containerd/runc; rmdir /run/containerd 2>/dev/null; fi
  rm -rf "$LC"
  log "down in $(took "$t")s"
  set -e
}

status() {
  local p rc=0
  for p in lc-etcd lc-apiserver lc-containerd lc-kcm lc-scheduler lc-kubelet; do
    if running "$p"; then echo "$p: running (pid $(cat "$RUN/$p.pid"))"; else echo "$p: stopped"; rc=1; fi
  done
  [ $rc = 0 ] && kc get nodes -o wide && echo "export KUBECONFIG=$KUBECONFIG_FILE"
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  load) shift; load "$@" ;;
  image) image ;;
  *) echo "usage: $0 up|down|status|image|load TARBALL..." >&2; exit 2 ;;
esac
