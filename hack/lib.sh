# Shared helpers for hack/ scripts: paths, logging, PID-based process control.
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
