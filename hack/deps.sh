#!/usr/bin/env bash
# Installs the Debian 12 packages that builds and tests need: libpcap, liblz4 (Kafka batch compression),
# gcc and libc6-dev (cgo, BPF compilation), lz4 (the oracle of lz4 frames), tcpdump, tcpreplay and tshark
# (oracles and traffic sources), iproute2 (network namespaces),
# softflowd, nfcapd and nfdump (NetFlow/IPFIX oracles: an exporter and a collector that are not ours),
# procps (pgrep), openssl and curl (test certificates, downloads), time (benchmarks), OpenJDK 17 and Maven
# (Kafka and Cassandra from Maven Central), git and make, Chromium (the web view's browser test), Node.js
# with npm when no npm is on the PATH (the web view's page), xmllint (libxml2-utils) and python3-venv (the
# graph tests validate GEXF against its RELAX NG schema and read it with networkx). Then checks Go 1.26 (not packaged by Debian 12)
# and that Java 17 is found, and unpacks promtool (Debian's prometheus package) into .cache. Idempotent:
# installs nothing when all are present.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PKGS="libpcap-dev liblz4-dev gcc libc6-dev lz4 tcpdump tcpreplay tshark softflowd nfdump iproute2 procps openssl curl ca-certificates time
  openjdk-17-jdk-headless maven git make chromium libxml2-utils python3-venv"
missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
# npm builds the web view's page (hack/ui-web.sh); a Node.js from elsewhere (nodesource) brings its own.
command -v npm >/dev/null || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
command -v go >/dev/null || die "go not found: install Go 1.26 from https://go.dev/dl/ into /usr/local/go"
java17_home >/dev/null || die "no Java 17 found in /usr/lib/jvm/*17* or on PATH (apt-get install openjdk-17-jdk-headless)"
# promtool checks and unit-tests the alert rules (internal/monitoring). It comes from Debian's prometheus
# package, unpacked into the cache rather than installed: installing would also set up a Prometheus server.
[ -x "$CACHE/debroot/usr/bin/promtool" ] || debian_extract prometheus
# networkx (PyPI) in a venv under .cache: the graph tests' GEXF and node-link JSON reader.
bash "$(dirname "$0")/networkx.sh" >/dev/null
# cicflowmeter (PyPI) in a venv under .cache: the oracle of the CICFlowMeter flow features.
bash "$(dirname "$0")/cicflowmeter.sh" >/dev/null
