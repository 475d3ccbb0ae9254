# shellcheck shell=bash
# Shared helpers for hack/ scripts: paths, logging, timing, PID-based process control, port checks,
# throwaway secrets and certificates.
# Sourced, never run. Everything slow lands in $CACHE (git-ignored), keyed by version.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CAPFLEET_CACHE:-$ROOT/.cache}
RUN=${CAPFLEET_RUN:-$ROOT/.run}
export PATH=/usr/local/go/bin:$PATH
log() { echo "[$(date +%T)] $(basename "$0"): $*" >&2; }
die() { log "error: $*"; exit 1; }
# now / took T: wall-clock stamps and the seconds since one, for "done in 3.2s" lines
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
# port_busy PORT [HOST]: something accepts TCP connections there (default host 127.0.0.1)
port_busy() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# start_bg NAME CMD... : start in the background, PID in $RUN/NAME.pid, output in $RUN/NAME.log
start_bg() {
  local n=$1; shift
  mkdir -p "$RUN"
  setsid nohup "$@" >"$RUN/$n.log" 2>&1 </dev/null &
  echo $! >"$RUN/$n.pid"
}

# running NAME : true when the process we started under NAME is alive
running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# stop_pid NAME : end the process we started (by its PID only), TERM then KILL after a grace period
stop_pid() {
  local f=$RUN/$1.pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  fi
  rm -f "$f"
}

# debian_extract PKG... : fetch Debian packages (not installed) and unpack them into $CACHE/debroot
debian_extract() {
  local d=$CACHE/debs
  mkdir -p "$d" "$CACHE/debroot"
  (cd "$d" && apt-get download -qq "$@" 2>/dev/null) || { apt-get update -qq && (cd "$d" && apt-get download -qq "$@"); }
  for p in "$@"; do for f in "$d"/${p}_*.deb; do dpkg-deb -x "$f" "$CACHE/debroot"; done; done
}

# java17_home : the home of a Java 17 installation on any architecture: the first of /usr/lib/jvm/*17*
# (Debian's java-17-openjdk-<arch>) and the `java` on PATH that reports version 17. Fails when none does.
java17_home() {
  local d j
  j=$(command -v java 2>/dev/null) && j=$(dirname "$(dirname "$(readlink -f "$j")")")
  for d in /usr/lib/jvm/*17* $j; do
    [ -x "$d/bin/java" ] && "$d/bin/java" -version 2>&1 | grep -q 'version "17[."]' && { readlink -f "$d"; return 0; }
  done
  return 1
}

# random_secret : 48 hex digits from the kernel's random source, no newline: a throwaway password
random_secret() { head -c 24 /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }

# Throwaway PKI for local services: a CA and the certificates it signs, valid 30 days, all in one DIR
# (0700). Keys are EC P-256, or RSA 2048 with PKI_KEY=rsa; files with a key or a password are 0600.
# openssl's output goes to DIR/openssl.log, shown on stderr when a step fails; a helper then returns
# non-zero, for the caller's `|| die`. No password ever stands on a command line.
_pki_openssl() {
  local d=$1; shift
  openssl "$@" >>"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
}
_pki_newkey() { # the -newkey arguments of openssl req
  if [ "${PKI_KEY:-ec}" = rsa ]; then echo -newkey rsa:2048; else echo -newkey ec -pkeyopt ec_paramgen_curve:P-256; fi
}

# pki_ca DIR SUBJECT : DIR/ca.key and the self-signed DIR/ca.crt, a CA named SUBJECT ("/CN=...")
pki_ca() {
  local d=$1
  mkdir -p "$d" && chmod 700 "$d" || return 1
  # shellcheck disable=SC2046
  (umask 077 && _pki_openssl "$d" req -x509 $(_pki_newkey) -nodes -days 30 -subj "$2" \
    -keyout "$d/ca.key" -out "$d/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign) &&
    chmod 644 "$d/ca.crt"
}

# pki_cert DIR NAME SUBJECT USAGE [SANS] : DIR/NAME.key and DIR/NAME.crt for SUBJECT, signed by DIR's CA.
# USAGE is the extended key usage (serverAuth, clientAuth, or both comma-separated), SANS a server's
# subjectAltName (IP:127.0.0.1,DNS:localhost).
pki_cert() {
  local d=$1 n=$2
  printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
    "extendedKeyUsage=$4" ${5:+"subjectAltName=$5"} >"$d/$n.ext" || return 1
  # shellcheck disable=SC2046
  (umask 077 && _pki_openssl "$d" req $(_pki_newkey) -nodes -subj "$3" -keyout "$d/$n.key" -out "$d/$n.csr") &&
    _pki_openssl "$d" x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
      -extfile "$d/$n.ext" -out "$d/$n.crt" &&
    rm -f "$d/$n.csr" "$d/$n.ext"
}

# pki_pem DIR NAME : DIR/NAME.pem, NAME's key (PKCS#8), certificate and the CA's in one file (a PEM keystore)
pki_pem() {
  local d=$1 n=$2
  (umask 077 && _pki_openssl "$d" pkcs8 -topk8 -nocrypt -in "$d/$n.key" -out "$d/$n.pk8" &&
    cat "$d/$n.pk8" "$d/$n.crt" "$d/ca.crt" >"$d/$n.pem" && rm -f "$d/$n.pk8")
}

# pki_p12 DIR NAME ALIAS STORE : DIR/STORE.p12, a PKCS#12 keystore of NAME's key and certificate chain
# under ALIAS, locked with a new random password that DIR/STORE.pass holds (openssl reads it there)
pki_p12() {
  local d=$1 n=$2
  (umask 077 && random_secret >"$d/$4.pass" &&
    _pki_openssl "$d" pkcs12 -export -name "$3" -in "$d/$n.crt" -inkey "$d/$n.key" -certfile "$d/ca.crt" \
      -out "$d/$4.p12" -passout "file:$d/$4.pass")
}

# pki_signing_key DIR NAME : DIR/NAME.key, an RSA 2048 key, and its public half DIR/NAME.pub
pki_signing_key() {
  local d=$1 n=$2
  (umask 077 && _pki_openssl "$d" genrsa -out "$d/$n.key" 2048) &&
    _pki_openssl "$d" rsa -in "$d/$n.key" -pubout -out "$d/$n.pub"
}

# wait_for WHAT SECONDS NAME CMD... : poll CMD until it succeeds; die, with the log's tail, when the process started
# as NAME exits or SECONDS pass first
wait_for() {
  local what=$1 secs=$2 name=$3; shift 3
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    running "$name" || { tail -20 "$RUN/$name.log" >&2; die "$what: $name exited (log: $RUN/$name.log)"; }
    [ $SECONDS -lt $end ] || { tail -20 "$RUN/$name.log" >&2; die "$what: not after ${secs}s (log: $RUN/$name.log)"; }
    sleep 0.2
  done
}

# The local Kubernetes control planes (hack/controlplane.sh, hack/local-cluster.sh) share how they reach and start
# their API server; PKI is the folder of their pki_* certificates (ca, apiserver, admin, the sa signing key).

# kube_config FILE PKI PORT CLUSTER USER : a kubeconfig for USER's certificate on https://127.0.0.1:PORT
kube_config() {
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $4
  cluster: {server: "https://127.0.0.1:$3", certificate-authority: $2/ca.crt}
users:
- name: $5
  user: {client-certificate: $2/$5.crt, client-key: $2/$5.key}
contexts:
- name: $4
  context: {cluster: $4, user: $5}
current-context: $4
KC
}

# kube_ready PKI PORT : the API server on 127.0.0.1:PORT is ready, as PKI's admin sees it
kube_ready() { curl -sf --cacert "$1/ca.crt" --cert "$1/admin.crt" --key "$1/admin.key" "https://127.0.0.1:$2/readyz" >/dev/null 2>&1; }

# start_etcd NAME ETCD DATA MEMBER PORT : a one-member etcd serving clients on 127.0.0.1:PORT (peers on PORT+1),
# started as NAME
start_etcd() {
  local peer="http://127.0.0.1:$(($5 + 1))"
  start_bg "$1" "$2" --name "$4" --data-dir "$3" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$5" --advertise-client-urls "http://127.0.0.1:$5" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$4=$peer"
}

# start_apiserver NAME APISERVER PKI PORT ETCD_PORT FLAG... : kube-apiserver on 127.0.0.1:PORT with PKI's apiserver
# certificate and service-account keys, started as NAME, with FLAGs besides
start_apiserver() {
  local name=$1 bin=$2 pki=$3 port=$4 etcd=$5; shift 5
  start_bg "$name" "$bin" --etcd-servers="http://127.0.0.1:$etcd" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --service-account-issuer="https://127.0.0.1:$port" --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.0.0.0/24 --profiling=false "$@"
}
