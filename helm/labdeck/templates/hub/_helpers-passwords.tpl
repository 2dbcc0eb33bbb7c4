{{- /*
  labdeck.generatedSecret: the value of one generated secret of the hub Secret.

  Order (documented in hub/secret.yaml):
    1. the explicit value from values.yaml, when it is set;
    2. the value already stored under the same key in the hub Secret
       (`lookup`; only in a real install/upgrade - `helm template` and
       `--dry-run` see no cluster);
    3. a new random value.

  Call with (dict "root" $ "key" "proxy.token" "explicit" .Values.proxy.secretToken "hex" false).
  With "hex" true the random value is 64 hex characters (the format JupyterHub
  expects for its cookie secret).
*/}}
{{- define "labdeck.generatedSecret" -}}
{{- if .explicit -}}
{{- .explicit -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "labdeck.hub.fullname" .root) | default dict -}}
{{- $stored := dig "data" .key "" $existing -}}
{{- if $stored -}}
{{- $stored | b64dec -}}
{{- else if .hex -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}
