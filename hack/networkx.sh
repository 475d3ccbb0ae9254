#!/usr/bin/env bash
# Installs networkx from PyPI into a virtualenv under .cache, keyed by version, and prints the path of
# its Python. The graph tests read capfleet's GEXF and node-link JSON with it: a parser we did not write.
# networkx reads GEXF 1.3 from 3.6 on. Idempotent: a complete venv is reused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NETWORKX_VERSION=3.6
dir="$CACHE/networkx-$NETWORKX_VERSION"
if [ ! -f "$dir/.complete" ]; then
  log "installing networkx $NETWORKX_VERSION into $dir"
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "networkx==$NETWORKX_VERSION" >&2
  "$dir/bin/python" -c 'import networkx' 
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
