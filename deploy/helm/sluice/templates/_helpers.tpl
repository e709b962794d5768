{{/* Name of the chart, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.configMapName" -}}
{{- default (include "sluice.fullname" .) .Values.config.existingConfigMap }}
{{- end }}

{{- define "sluice.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "sluice.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* full or lite: image.distribution, else lite for the sidecar (kind None). */}}
{{- define "sluice.distribution" -}}
{{- default (ternary "lite" "full" (eq .Values.kind "None")) .Values.image.distribution }}
{{- end }}

{{/* A digest pins whatever image it names; otherwise the lite image is the
tag with -lite appended. */}}
{{- define "sluice.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq (include "sluice.distribution" .) "lite" }}{{ $tag = printf "%s-lite" $tag }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Checks of combinations the schema cannot express. */}}
{{- define "sluice.validate" -}}
{{- if and .Values.webConfig.enabled (not .Values.webConfig.existingSecret) (not .Values.webConfig.content) }}
{{- fail "webConfig.enabled needs webConfig.existingSecret or webConfig.content" }}
{{- end }}
{{- if and (eq .Values.storage.type "pvc") (eq .Values.kind "DaemonSet") (not .Values.storage.pvc.existingClaim) }}
{{- fail "storage.type=pvc with kind=DaemonSet would share one claim between every node's agent: use storage.type=hostPath, or a Deployment" }}
{{- end }}
{{- if and (eq .Values.storage.type "pvc") (eq .Values.kind "Deployment") (gt (int .Values.replicas) 1) (has "ReadWriteOnce" .Values.storage.pvc.accessModes) }}
{{- fail "storage.type=pvc with ReadWriteOnce cannot serve more than one replica" }}
{{- end }}
{{- if eq .Values.kind "None" }}
{{- if and .Values.serviceMonitor.enabled (or (not .Values.serviceMonitor.selector) (not .Values.serviceMonitor.port)) }}
{{- fail "serviceMonitor.enabled with kind=None selects the application's Service: set serviceMonitor.selector (its labels, e.g. {matchLabels: {app: web}}) and serviceMonitor.port (the name of its port that reaches the Sluice container)" }}
{{- end }}
{{- else }}
{{- if and .Values.serviceMonitor.enabled (not .Values.service.enabled) }}
{{- fail "serviceMonitor.enabled needs service.enabled" }}
{{- end }}
{{- if .Values.serviceMonitor.selector }}
{{- fail "serviceMonitor.selector is for kind=None (the application's Service); with a workload the ServiceMonitor selects the chart's own Service" }}
{{- end }}
{{- end }}
{{- if and (not .Values.dashboards.enabled) (or .Values.dashboards.folder .Values.dashboards.labels .Values.dashboards.namespace) }}
{{- fail "dashboards.folder, dashboards.labels and dashboards.namespace are used only with dashboards.enabled=true" }}
{{- end }}
{{- end }}
