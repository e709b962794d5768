{{/* The pod template shared by the DaemonSet and the Deployment. */}}
{{- define "sluice.podTemplate" -}}
metadata:
  labels:
    {{- include "sluice.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "sluice.serviceAccountName" . }}
  automountServiceAccountToken: {{ ternary .Values.rbac.create .Values.serviceAccount.automountToken (kindIs "invalid" .Values.serviceAccount.automountToken) }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if and (eq .Values.storage.type "hostPath") .Values.storage.volumePermissions.enabled }}
  initContainers:
    # hostPath directories are created root-owned; give this one to the
    # agent's user. Runs as root with the CHOWN capability only.
    - name: volume-permissions
      image: {{ .Values.storage.volumePermissions.image }}
      command: ["chown", "{{ .Values.podSecurityContext.runAsUser }}:{{ .Values.podSecurityContext.runAsGroup }}", "{{ .Values.storage.mountPath }}"]
      securityContext:
        runAsNonRoot: false
        runAsUser: 0
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
          add: [CHOWN]
      volumeMounts:
        - name: data
          mountPath: {{ .Values.storage.mountPath }}
  {{- end }}
  containers:
    - name: sluice
      image: {{ include "sluice.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --server.http.listen-addr=:{{ .Values.agent.port }}
        - --storage.path={{ .Values.storage.mountPath }}
        - --log.level={{ .Values.agent.logLevel }}
        - --log.format={{ .Values.agent.logFormat }}
        {{- if .Values.agent.enableLifecycle }}
        - --web.enable-lifecycle
        {{- end }}
        {{- if .Values.webConfig.enabled }}
        - --web.config.file={{ .Values.webConfig.mountPath }}/{{ .Values.webConfig.key }}
        - --web.probe-listen-address=:{{ .Values.webConfig.probePort }}
        {{- end }}
        {{- range .Values.agent.extraArgs }}
        - {{ . | quote }}
        {{- end }}
        - /etc/sluice/sluice.hcl
      env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: HOST_IP
          valueFrom: {fieldRef: {fieldPath: status.hostIP}}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.agent.port }}
          protocol: TCP
        {{- if .Values.webConfig.enabled }}
        - name: probe
          containerPort: {{ .Values.webConfig.probePort }}
          protocol: TCP
        {{- end }}
        {{- if .Values.statsd.enabled }}
        {{- if .Values.statsd.udp }}
        - name: statsd-udp
          containerPort: {{ .Values.statsd.port }}
          protocol: UDP
          {{- if and (eq .Values.kind "DaemonSet") .Values.statsd.hostPort }}
          hostPort: {{ .Values.statsd.port }}
          {{- end }}
        {{- end }}
        {{- if .Values.statsd.tcp }}
        - name: statsd-tcp
          containerPort: {{ .Values.statsd.port }}
          protocol: TCP
          {{- if and (eq .Values.kind "DaemonSet") .Values.statsd.hostPort }}
          hostPort: {{ .Values.statsd.port }}
          {{- end }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraPorts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet:
          path: /-/healthy
          port: {{ ternary "probe" "http" .Values.webConfig.enabled }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /-/ready
          port: {{ ternary "probe" "http" .Values.webConfig.enabled }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        # The ConfigMap as a directory (no subPath): Sluice watches it and
        # reloads on the kubelet's symlink swap.
        - name: config
          mountPath: /etc/sluice
          readOnly: true
        - name: data
          mountPath: {{ .Values.storage.mountPath }}
        {{- if .Values.webConfig.enabled }}
        - name: web-config
          mountPath: {{ .Values.webConfig.mountPath }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "sluice.configMapName" . }}
    - name: data
      {{- if eq .Values.storage.type "hostPath" }}
      hostPath:
        path: {{ printf "%s/%s" (trimSuffix "/" .Values.storage.hostPath.path) .Release.Name }}
        type: DirectoryOrCreate
      {{- else if eq .Values.storage.type "pvc" }}
      persistentVolumeClaim:
        claimName: {{ default (include "sluice.fullname" .) .Values.storage.pvc.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- if .Values.webConfig.enabled }}
    - name: web-config
      secret:
        secretName: {{ include "sluice.webConfigSecretName" . }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
