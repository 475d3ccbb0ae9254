#!/usr/bin/env bash
# Installs the Debian packages that builds and tests need: libpcap (cgo, BPF compilation),
# tcpdump, tcpreplay and tshark (oracles and traffic sources), iproute2 (network namespaces).
# Idempotent: does nothing when all are present.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PKGS="libpcap-dev tcpdump tcpreplay tshark iproute2 openssl curl time"
missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
log "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
