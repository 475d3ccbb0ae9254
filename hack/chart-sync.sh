#!/usr/bin/env bash
# Copies into the Helm chart (charts/capfleet) what config/ holds and the chart must not restate:
# the CRDs, the RBAC rules controller-gen writes from the markers, the leader-election rules, the alert
# rules and the Grafana dashboard. Run by `make dist`; `make verify` fails when the copies are stale, and
# internal/install's tests compare the rendered chart with config/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
chart=charts/capfleet
rm -f "$chart"/crds/*.yaml
cp config/crd/bases/*.yaml "$chart/crds/"
# Only the rules: the chart writes each Role's metadata itself (labels, the release namespace).
sed -n '/^rules:/,$p' config/rbac/role.yaml >"$chart/files/manager-role-rules.yaml"
sed -n '/^rules:/,$p' config/rbac/leader_election_role.yaml >"$chart/files/leader-election-role-rules.yaml"
cp config/prometheus/prometheusrule.yaml "$chart/files/prometheusrule.yaml"
cp config/grafana/capfleet-dashboard.json "$chart/files/capfleet-dashboard.json"
sed -n '/^rules:/,$p' config/ui/role.yaml >"$chart/files/ui-role-rules.yaml"
