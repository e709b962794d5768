{{/* The scrape endpoints shared by the ServiceMonitor and the PodMonitor. */}}
{{- define "sluice.monitorEndpoints" -}}
{{- $m := .monitor }}
{{- range $m.paths }}
- port: {{ default "http" $m.port }}
  path: {{ . }}
  scheme: {{ $m.scheme }}
  interval: {{ $m.interval }}
  {{- with $m.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  {{- with $m.tlsConfig }}
  tlsConfig:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $m.basicAuth }}
  basicAuth:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $m.relabelings }}
  relabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $m.metricRelabelings }}
  metricRelabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
