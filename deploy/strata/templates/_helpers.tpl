{{/* The name every object of the release carries. */}}
{{- define "strata.name" -}}
{{ .Release.Name }}-strata
{{- end -}}

{{- define "strata.labels" -}}
app.kubernetes.io/name: strata-extensions
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
