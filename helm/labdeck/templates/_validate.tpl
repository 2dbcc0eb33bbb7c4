{{- /*
  labdeck.validate: combinations of values that the JSON schema cannot
  express. Included by hub/secret.yaml, so `helm template`, `lint` and
  `install` all stop with the message.
*/}}
{{- define "labdeck.validate" -}}
{{- if and (eq .Values.auth.type "dev") (not .Values.auth.dev.enabledInsecureDevelopmentLogin) -}}
{{- fail "auth.type is \"dev\": the development login lets anyone who knows one shared password log in as any user. Set auth.dev.enabledInsecureDevelopmentLogin: true to accept that (CI clusters only), or use auth.type: generic-oauth." -}}
{{- end -}}
{{- if and .Values.auth.dev.enabledInsecureDevelopmentLogin (ne .Values.auth.type "dev") -}}
{{- fail "auth.dev.enabledInsecureDevelopmentLogin is true but auth.type is not \"dev\"; remove it." -}}
{{- end -}}
{{- if and .Values.scheduling.userPlaceholder.enabled (not .Values.scheduling.podPriority.enabled) -}}
{{- fail "scheduling.userPlaceholder.enabled needs scheduling.podPriority.enabled: placeholders must have a lower priority than user pods." -}}
{{- end -}}
{{- if and (eq .Values.hub.db.type "url") (not .Values.hub.db.url) -}}
{{- fail "hub.db.type is \"url\" but hub.db.url is empty." -}}
{{- end -}}
{{- if and (has "aws" .Values.cloud.providers) (not .Values.cloud.aws.bucket) -}}
{{- fail "cloud.providers contains \"aws\" but cloud.aws.bucket is empty." -}}
{{- end -}}
{{- if and (has "gcp" .Values.cloud.providers) (not .Values.cloud.gcp.project) -}}
{{- fail "cloud.providers contains \"gcp\" but cloud.gcp.project is empty." -}}
{{- end -}}
{{- $defaults := 0 -}}
{{- range .Values.singleuser.profiles -}}{{- if .default -}}{{- $defaults = add1 $defaults -}}{{- end -}}{{- end -}}
{{- if gt $defaults 1 -}}
{{- fail "singleuser.profiles: more than one profile has default: true." -}}
{{- end -}}
{{- include "labdeck.removedKeys" . -}}
{{- end -}}

{{- /*
  labdeck.removedKeys: values that were removed or renamed. A stale key stops
  the install with what to use instead (the schema would reject it too, but
  with a less helpful message). Also called from NOTES.txt.
  Each entry: "old.key.path" -> "what to do"; removed values of a key
  (an enum member the schema still accepts) are listed after the dict.
*/}}
{{- define "labdeck.removedKeys" -}}
{{- $removed := dict
  "hub.cookie_secret" "renamed to hub.cookieSecret"
  "auth.dev.enabled" "renamed to auth.dev.enabledInsecureDevelopmentLogin"
  "singleuser.profileList" "renamed to singleuser.profiles"
  "broker.aws" "moved to cloud.aws (shared by the hub and the broker)"
  "broker.gcp" "moved to cloud.gcp (shared by the hub and the broker)"
  "culler.timeoutSeconds" "renamed to culler.timeout"
-}}
{{- $messages := list -}}
{{- range $path := keys $removed | sortAlpha -}}
{{- $node := $.Values -}}
{{- $found := true -}}
{{- range $part := splitList "." $path -}}
{{- if and $found (kindIs "map" $node) (hasKey $node $part) -}}
{{- $node = index $node $part -}}
{{- else -}}
{{- $found = false -}}
{{- end -}}
{{- end -}}
{{- if $found -}}
{{- $messages = append $messages (printf "%s: %s" $path (index $removed $path)) -}}
{{- end -}}
{{- end -}}
{{- if has "local-aws" ($.Values.cloud.providers | default list) -}}
{{- $messages = append $messages "cloud.providers: local-aws was removed (the local AWS endpoint now evaluates session policies): use aws with cloud.aws.endpointUrl and cloud.aws.roleArn" -}}
{{- end -}}
{{- if $messages -}}
{{- fail (printf "\n\nlabdeck: these values were removed or renamed:\n- %s\n" (join "\n- " $messages)) -}}
{{- end -}}
{{- end -}}
