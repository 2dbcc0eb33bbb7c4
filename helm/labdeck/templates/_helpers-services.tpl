{{- /*
  Helpers shared by labdeck's own hub services that run in their own
  Deployments (runs, viewer): what JupyterHub gives a service it manages,
  for a service the chart runs itself (like z2jh's hub.services.<name>).

  labdeck.servicePrefix (dict "root" $ "name" "runs")
    "<hub.baseUrl>services/<name>/": JupyterHub's prefix of the service.
*/}}
{{- define "labdeck.servicePrefix" -}}
{{- printf "%sservices/%s/" .root.Values.hub.baseUrl .name -}}
{{- end -}}

{{- /* labdeck.serviceImage (dict "image" .Values.runs.image "root" $): "name:tag", hub.image where empty. */}}
{{- define "labdeck.serviceImage" -}}
{{- $name := default .root.Values.hub.image.name .image.name -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.hub.image.tag) .image.tag -}}
{{- printf "%s:%s" $name $tag -}}
{{- end -}}

{{- /*
  labdeck.hubServiceEnv (dict "root" $ "name" "runs"): the JUPYTERHUB_* env
  of a service; its API token comes from the hub Secret key
  "<name>.api-token" (hub/secret.yaml).
*/}}
{{- define "labdeck.hubServiceEnv" -}}
{{- $root := .root -}}
{{- $prefix := include "labdeck.servicePrefix" . -}}
- name: JUPYTERHUB_SERVICE_NAME
  value: {{ .name }}
- name: JUPYTERHUB_SERVICE_PREFIX
  value: {{ $prefix | quote }}
- name: JUPYTERHUB_BASE_URL
  value: {{ $root.Values.hub.baseUrl | quote }}
- name: JUPYTERHUB_CLIENT_ID
  value: {{ printf "service-%s" .name | quote }}
- name: JUPYTERHUB_OAUTH_CALLBACK_URL
  value: {{ printf "%soauth_callback" $prefix | quote }}
- name: JUPYTERHUB_API_URL
  value: {{ printf "http://%s:%v%shub/api" (include "labdeck.hub.fullname" $root) $root.Values.hub.service.port $root.Values.hub.baseUrl | quote }}
- name: JUPYTERHUB_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "labdeck.hub.fullname" $root }}
      key: {{ printf "%s.api-token" .name }}
{{- end -}}

{{- /*
  labdeck.serviceNetpolPeers (dict "root" $ "components" (list "proxy" "hub")):
  a NetworkPolicy `from`/`to` list selecting this release's pods of those components.
*/}}
{{- define "labdeck.serviceNetpolPeers" -}}
- podSelector:
    matchLabels:
      {{- include "labdeck.releaseLabels" .root | nindent 6 }}
    matchExpressions:
      - key: app.kubernetes.io/component
        operator: In
        values: {{ toJson .components }}
{{- end -}}

{{- /* labdeck.dnsEgress: egress to DNS, wherever the cluster's resolver is. */}}
{{- define "labdeck.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{- /*
  labdeck.serviceValues: the values a runs or viewer pod mounts (values.yaml of
  its ConfigMap), for its config file (files/<name>/<name>_config.py). Only
  what their configurers read (labdeck.hub.configure_services: cloud.*,
  hub.baseUrl) plus the injected Names/Chart/Release: no secret of the hub's
  values reaches these pods (the broker mounts the hub Secret's values.yaml).
*/}}
{{- define "labdeck.serviceValues" -}}
{{- $values := dict "cloud" .Values.cloud "hub" (dict "baseUrl" .Values.hub.baseUrl) -}}
{{- $_ := set $values "Names" (include "labdeck.name-map" . | fromYaml) -}}
{{- $_ := set $values "Chart" (dict "Name" .Chart.Name "Version" .Chart.Version "AppVersion" .Chart.AppVersion) -}}
{{- $_ := set $values "Release" (dict "Name" .Release.Name "Namespace" .Release.Namespace) -}}
{{- toYaml $values -}}
{{- end -}}

{{- /*
  labdeck.serviceConfigMap (dict "root" $ "name" "runs"): the ConfigMap of a
  service's config file (files/<name>/*) and the values it reads.
*/}}
{{- define "labdeck.serviceConfigMap" -}}
{{- $root := .root -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include (printf "labdeck.%s.fullname" .name) $root }}
  labels:
    {{- include "labdeck.labels" (dict "root" $root "component" .name) | nindent 4 }}
data:
  {{- ($root.Files.Glob (printf "files/%s/*" .name)).AsConfig | nindent 2 }}
  values.yaml: |
    {{- include "labdeck.serviceValues" $root | nindent 4 }}
{{- end -}}
