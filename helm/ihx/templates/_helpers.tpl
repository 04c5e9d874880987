{{/*
Names and labels.
*/}}
{{- define "ihx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ihx.fullname" -}}
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

{{- define "ihx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "ihx.labels" -}}
helm.sh/chart: {{ include "ihx.chart" . }}
{{ include "ihx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "ihx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ihx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The node pods, as opposed to the migration Job's pods. */}}
{{- define "ihx.nodeSelectorLabels" -}}
{{ include "ihx.selectorLabels" . }}
app.kubernetes.io/component: node
{{- end }}

{{- define "ihx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ihx.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ihx.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Fixed paths inside the container. The image's CMD reads /etc/ihx/config/node.toml.
*/}}
{{- define "ihx.configDir" -}}/etc/ihx/config{{- end }}
{{- define "ihx.manifestDir" -}}/etc/ihx/manifest{{- end }}
{{- define "ihx.keysDir" -}}/etc/ihx/keys{{- end }}
{{- define "ihx.tlsDir" -}}/etc/ihx/tls{{- end }}
{{- define "ihx.geoipDir" -}}/var/lib/ihx/geoip{{- end }}

{{- define "ihx.manifestPath" -}}
{{- if .Values.manifest.existingConfigMap -}}
{{ include "ihx.manifestDir" . }}/manifest.json
{{- else -}}
{{ include "ihx.configDir" . }}/manifest.json
{{- end }}
{{- end }}

{{- define "ihx.signingKeySecretName" -}}
{{- if .Values.secrets.create }}{{ include "ihx.fullname" . }}{{ else }}{{ .Values.secrets.existing.signingKeySecret }}{{ end }}
{{- end }}

{{- define "ihx.signingKeySecretKey" -}}
{{- if .Values.secrets.create }}signing.key{{ else }}{{ .Values.secrets.existing.signingKeyKey }}{{ end }}
{{- end }}

{{- define "ihx.tlsSecretName" -}}
{{- if .Values.secrets.create }}{{ include "ihx.fullname" . }}{{ else }}{{ .Values.secrets.existing.tlsSecret }}{{ end }}
{{- end }}

{{/*
node.toml. Strings and lists go through toJson: a JSON string is a valid TOML basic string
(same escapes, \uXXXX included), and a JSON array of strings is a valid TOML array. The database
URL is not here: it comes from a Secret as IHX_DATABASE_URL.
*/}}
{{- define "ihx.nodeToml" -}}
# Rendered by the ihx Helm chart; every key can be overridden by IHX_<SECTION>_<KEY>.
[node]
member = {{ .Values.node.member | toJson }}
listen = "0.0.0.0:7443"

[keys]
signing_key = "{{ include "ihx.keysDir" . }}/signing.key"

[manifest]
path = {{ include "ihx.manifestPath" . | toJson }}
trusted_keys = {{ .Values.manifest.trustedKeys | toJson }}

[geoip]
country_db = "{{ include "ihx.geoipDir" . }}/{{ .Values.geoip.countryFile }}"
{{- if .Values.geoip.asnFile }}
asn_db = "{{ include "ihx.geoipDir" . }}/{{ .Values.geoip.asnFile }}"
{{- end }}

[resolver]
kind = {{ .Values.resolver.kind | toJson }}
{{- with .Values.resolver.nameservers }}
nameservers = {{ toJson . }}
{{- end }}
{{- if eq .Values.resolver.kind "static" }}

[resolver.static]
{{- range $host, $addresses := .Values.resolver.static }}
{{ $host | toJson }} = {{ $addresses | toJson }}
{{- end }}
{{- end }}

[tls]
cert = "{{ include "ihx.tlsDir" . }}/tls.crt"
key = "{{ include "ihx.tlsDir" . }}/tls.key"
ca = "{{ include "ihx.tlsDir" . }}/ca.crt"

[metrics]
listen = "0.0.0.0:9464"
{{- with .Values.auth }}
{{- if or .trustedIssuers .jwksCacheSeconds .jwksRefreshMinSeconds .jwksTimeoutSeconds .jwksMaxStaleSeconds }}

[auth]
{{- if .trustedIssuers }}
jwks = "{{ include "ihx.configDir" $ }}/trusted-issuers.json"
{{- end }}
{{- with .jwksCacheSeconds }}
jwks_cache_s = {{ . | toJson }}
{{- end }}
{{- with .jwksRefreshMinSeconds }}
jwks_refresh_min_s = {{ . | toJson }}
{{- end }}
{{- with .jwksTimeoutSeconds }}
jwks_timeout_s = {{ . | toJson }}
{{- end }}
{{- with .jwksMaxStaleSeconds }}
jwks_max_stale_s = {{ . | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.partners }}
{{- if or .rules .visibilityTimeoutSeconds }}

[partners]
{{- with .visibilityTimeoutSeconds }}
visibility_timeout_s = {{ . | toJson }}
{{- end }}
{{- range .rules }}

[[partners.rules]]
partner = {{ .partner | toJson }}
countries = {{ .countries | default list | toJson }}
classifications = {{ .classifications | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.exchange }}

[exchange]
{{- range $key, $value := . }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{ end }}

{{/* The trusted-issuers file ([auth] jwks): public keys or where they are published. */}}
{{- define "ihx.trustedIssuersJson" -}}
{{- if .Values.auth.trustedIssuers -}}
{{ dict "issuers" .Values.auth.trustedIssuers | toJson }}
{{- end -}}
{{- end }}

{{/* What a pod reads once at start: a change rolls the pods (the manifest is not in it). */}}
{{- define "ihx.configChecksum" -}}
{{ print (include "ihx.nodeToml" .) (include "ihx.trustedIssuersJson" .) | sha256sum }}
{{- end }}

{{/* The Secret-held database DSN, shared by the node and the migration Job. */}}
{{- define "ihx.databaseEnv" -}}
- name: IHX_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/* Pod-level security context, shared by the node and the migration Job. */}}
{{- define "ihx.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
# Mounted Secrets and the GeoIP volume become readable by the node's group.
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context: nothing but /tmp (an emptyDir) is writable. */}}
{{- define "ihx.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The web view's pods (`ihx web`), apart from the node's: their own selector. */}}
{{- define "ihx.webSelectorLabels" -}}
{{ include "ihx.selectorLabels" . }}
app.kubernetes.io/component: web
{{- end }}
