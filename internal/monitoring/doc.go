// Package monitoring holds no code: its test checks that the alerts (config/prometheus) and the
// dashboard (config/grafana) name only metrics and labels the workloads export.
package monitoring
