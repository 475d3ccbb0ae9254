#!/usr/bin/env bash
# Builds the page `capfleet ui` serves: ui/web/src bundled by esbuild (with cytoscape, both from npm at
# the versions package-lock.json pins, installed by `npm ci`) plus ui/web/public, into ui/web/dist, which
# the Go binary embeds (go:embed). The bundle is committed, so `go build ./...` works on a fresh clone
# without Node; make build runs this to rebuild it when the sources changed (make verify checks the
# committed bundle is what they build). Cached: nothing runs when the inputs' hash matches the last build
# (UI_WEB_FORCE=1 rebuilds anyway).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
WEB=$ROOT/ui/web
STAMP=$CACHE/ui-web/stamp
key=$(cd "$WEB" && cat package.json package-lock.json $(find src public -type f | sort) | sha256sum | cut -d' ' -f1)
if [ -z "${UI_WEB_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] && [ -d "$WEB/node_modules" ] && [ -f "$WEB/dist/app.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  log "installing nodejs and npm (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "$CACHE/ui-web" "$CACHE/npm"
cd "$WEB"
log "npm ci and esbuild: ui/web -> ui/web/dist"
# Packages come from the lock file only; their install scripts are not run (esbuild needs none: its
# binary is the @esbuild/<platform> package npm picks).
npm ci --ignore-scripts --no-audit --no-fund --cache "$CACHE/npm" >/dev/null
rm -rf dist.tmp && mkdir dist.tmp
node_modules/.bin/esbuild src/app.js --bundle --minify --format=iife --target=es2020 --legal-comments=linked \
  --log-level=warning --outfile=dist.tmp/app.js
cp public/* dist.tmp/
rm -rf dist && mv dist.tmp dist
echo "$key" > "$STAMP"
