{{/* The operator's image reference. */}}
{{- define "capfleet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels every object of the chart carries; the selector labels are the ones config/ uses. */}}
{{- define "capfleet.labels" -}}
app.kubernetes.io/name: capfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "capfleet.selectorLabels" -}}
app.kubernetes.io/name: capfleet
app.kubernetes.io/component: manager
{{- end -}}
