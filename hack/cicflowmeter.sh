#!/usr/bin/env bash
# Installs the cicflowmeter package from PyPI into a virtualenv under .cache, keyed by version, and prints
# the path of its command. processor/flow's CIC test compares capfleet's CICFlowMeter columns with what it
# writes for the same captures: an implementation we did not write.
# cicflowmeter 0.2.0 hooks scapy's sessions as scapy 2.5 had them (on_packet_received); from scapy 2.6 on
# that hook is never called and it writes no flow, hence the pin. It reads files through tcpdump (a BPF
# filter), which hack/deps.sh installs. Idempotent: a complete venv is reused where it was made (its
# commands name their interpreter by absolute path, so a venv copied or moved elsewhere is made again).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
CICFLOWMETER_VERSION=0.2.0
SCAPY_VERSION=2.5.0
dir="$CACHE/cicflowmeter-$CICFLOWMETER_VERSION-scapy-$SCAPY_VERSION"
if [ "$(cat "$dir/.complete" 2>/dev/null)" != "$dir" ]; then
  log "installing cicflowmeter $CICFLOWMETER_VERSION (scapy $SCAPY_VERSION) into $dir"
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "cicflowmeter==$CICFLOWMETER_VERSION" "scapy==$SCAPY_VERSION" >&2
  "$dir/bin/python" -c 'import cicflowmeter.flow_session'
  echo "$dir" >"$dir/.complete"
fi
echo "$dir/bin/cicflowmeter"
