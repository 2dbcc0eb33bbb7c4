{{- /*
  labdeck.imagePuller.daemonset: a DaemonSet whose init containers each run one
  image of labdeck.userImages (so every node pulls it) and whose main
  container is a pause container. Shared by the continuous and the hook
  pre-puller. Call with (dict "root" $ "hook" true|false).
*/}}
{{- define "labdeck.imagePuller.daemonset" -}}
{{- $root := .root -}}
{{- $component := ternary "hook-image-puller" "continuous-image-puller" .hook -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include (printf "labdeck.%s.fullname" $component) $root }}
  labels:
    {{- include "labdeck.labels" (dict "root" $root "component" $component) | nindent 4 }}
  {{- if .hook }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
  {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "labdeck.matchLabels" (dict "root" $root "component" $component) | nindent 6 }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 100%
  template:
    metadata:
      labels:
        {{- include "labdeck.labels" (dict "root" $root "component" $component) | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 0
      {{- with include "labdeck.imagePullSecrets" $root }}{{ . | nindent 6 }}{{- end }}
      securityContext:
        {{- include "labdeck.podSecurityContext" (dict "uid" 65534 "gid" 65534) | nindent 8 }}
      {{- with $root.Values.singleuser.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      tolerations:
        # run wherever user pods may run, tainted user pools included
        - operator: Exists
          effect: NoSchedule
      initContainers:
        {{- range $i, $image := include "labdeck.userImages" $root | splitList "\n" }}
        - name: image-{{ $i }}
          image: {{ $image }}
          imagePullPolicy: IfNotPresent
          command: [/bin/sh, -c, "echo pulled"]
          securityContext:
            {{- include "labdeck.containerSecurityContext" dict | nindent 12 }}
          {{- with $root.Values.prePuller.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        {{- end }}
      containers:
        - name: pause
          image: {{ include "labdeck.image" (dict "image" $root.Values.prePuller.pause "root" $root) }}
          securityContext:
            {{- include "labdeck.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 12 }}
          {{- with $root.Values.prePuller.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end -}}
