{{- /*
  Every name the chart gives a Kubernetes object is defined here, and only
  here. hub/secret.yaml exports them (under `Names` in values.yaml) so that
  Python reads them with labdeck.hub.values.get_name("<component>") instead of
  rebuilding them.

  labdeck.fullname
    The prefix of every name: fullnameOverride, else "<release>" when the
    release name already contains the chart name, else "<release>-<chart>".
    Truncated so that "<prefix>-<longest component suffix>" fits in 63
    characters (a DNS label, the limit for Service names).
*/}}
{{- define "labdeck.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- $full := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $full = .Values.fullnameOverride -}}
{{- else if contains $name .Release.Name -}}
{{- $full = .Release.Name -}}
{{- else -}}
{{- $full = printf "%s-%s" .Release.Name $name -}}
{{- end -}}
{{- $full | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- /* labdeck.name: the chart name, for the app.kubernetes.io/name label. */}}
{{- define "labdeck.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* One name per component: "<fullname>-<component>". */}}
{{- define "labdeck.hub.fullname" -}}{{ include "labdeck.fullname" . }}-hub{{- end -}}
{{- define "labdeck.hub-db.fullname" -}}{{ include "labdeck.fullname" . }}-hub-db{{- end -}}
{{- define "labdeck.proxy.fullname" -}}{{ include "labdeck.fullname" . }}-proxy{{- end -}}
{{- define "labdeck.proxy-public.fullname" -}}{{ include "labdeck.fullname" . }}-proxy-public{{- end -}}
{{- define "labdeck.proxy-api.fullname" -}}{{ include "labdeck.fullname" . }}-proxy-api{{- end -}}
{{- define "labdeck.broker.fullname" -}}{{ include "labdeck.fullname" . }}-broker{{- end -}}
{{- define "labdeck.runs.fullname" -}}{{ include "labdeck.fullname" . }}-runs{{- end -}}
{{- define "labdeck.viewer.fullname" -}}{{ include "labdeck.fullname" . }}-viewer{{- end -}}
{{- define "labdeck.runs-db.fullname" -}}{{ include "labdeck.fullname" . }}-runs-db{{- end -}}
{{- define "labdeck.viewer-db.fullname" -}}{{ include "labdeck.fullname" . }}-viewer-db{{- end -}}
{{- define "labdeck.homes.fullname" -}}{{ include "labdeck.fullname" . }}-homes{{- end -}}
{{- define "labdeck.singleuser.fullname" -}}{{ include "labdeck.fullname" . }}-singleuser{{- end -}}
{{- define "labdeck.continuous-image-puller.fullname" -}}{{ include "labdeck.fullname" . }}-continuous-image-puller{{- end -}}
{{- define "labdeck.hook-image-puller.fullname" -}}{{ include "labdeck.fullname" . }}-hook-image-puller{{- end -}}
{{- define "labdeck.hook-image-awaiter.fullname" -}}{{ include "labdeck.fullname" . }}-hook-image-awaiter{{- end -}}
{{- define "labdeck.user-priority.fullname" -}}{{ include "labdeck.fullname" . }}-user-priority{{- end -}}
{{- define "labdeck.user-placeholder.fullname" -}}{{ include "labdeck.fullname" . }}-user-placeholder{{- end -}}
{{- define "labdeck.user-placeholder-priority.fullname" -}}{{ include "labdeck.fullname" . }}-user-placeholder-priority{{- end -}}
{{- define "labdeck.metrics.fullname" -}}{{ include "labdeck.fullname" . }}-metrics{{- end -}}

{{- /*
  labdeck.name-map: every component name as a dict, exported to Python
  (values.yaml key `Names` in the hub Secret).
*/}}
{{- define "labdeck.name-map" -}}
hub: {{ include "labdeck.hub.fullname" . | quote }}
hub-db: {{ include "labdeck.hub-db.fullname" . | quote }}
proxy: {{ include "labdeck.proxy.fullname" . | quote }}
proxy-public: {{ include "labdeck.proxy-public.fullname" . | quote }}
proxy-api: {{ include "labdeck.proxy-api.fullname" . | quote }}
broker: {{ include "labdeck.broker.fullname" . | quote }}
{{- if .Values.runs.enabled }}
runs: {{ include "labdeck.runs.fullname" . | quote }}
{{- end }}
{{- if .Values.viewer.enabled }}
viewer: {{ include "labdeck.viewer.fullname" . | quote }}
{{- end }}
singleuser: {{ include "labdeck.singleuser.fullname" . | quote }}
{{- if and .Values.singleuser.warmPool.enabled (not .Values.singleuser.warmPool.homes.existingClaim) }}
homes: {{ include "labdeck.homes.fullname" . | quote }}
{{- end }}
user-priority: {{ include "labdeck.user-priority.fullname" . | quote }}
{{- end -}}
