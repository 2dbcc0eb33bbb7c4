{{- /*
  Labels. Every object carries labdeck.labels with its component; selectors
  use only labdeck.matchLabels (stable across chart versions, because a
  Deployment's selector is immutable).

  Call with (dict "root" $ "component" "hub").
*/}}
{{- define "labdeck.matchLabels" -}}
app.kubernetes.io/name: {{ include "labdeck.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "labdeck.labels" -}}
{{ include "labdeck.matchLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- /* Labels common to all labdeck pods of this release (no component), for NetworkPolicy peers. */}}
{{- define "labdeck.releaseLabels" -}}
app.kubernetes.io/name: {{ include "labdeck.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* labdeck.image: "name:tag" of an image dict; call with (dict "image" .Values.x.image "root" $). */}}
{{- define "labdeck.image" -}}
{{- printf "%s:%s" .image.name (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- /* labdeck.imagePullSecrets: the pod-spec block, or nothing. */}}
{{- define "labdeck.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- /* Security contexts of every labdeck container: non-root, no privilege escalation, no capabilities. */}}
{{- define "labdeck.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 1000 }}
runAsGroup: {{ .gid | default 1000 }}
fsGroup: {{ .gid | default 1000 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "labdeck.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnlyRootFilesystem | default false }}
capabilities:
  drop: [ALL]
{{- end -}}

{{- /*
  labdeck.userImages: every image a user server can run, one "repo:tag" per
  line, sorted and deduplicated: singleuser.image, each profile's image and
  prePuller.extraImages. The pre-pullers pull exactly this list.
*/}}
{{- define "labdeck.userImages" -}}
{{- $images := list (include "labdeck.image" (dict "image" .Values.singleuser.image "root" .)) -}}
{{- range .Values.singleuser.profiles -}}
{{- if .image -}}{{- $images = append $images .image -}}{{- end -}}
{{- end -}}
{{- range $k, $v := .Values.prePuller.extraImages -}}
{{- $images = append $images $v -}}
{{- end -}}
{{- $images | uniq | sortAlpha | join "\n" -}}
{{- end -}}
