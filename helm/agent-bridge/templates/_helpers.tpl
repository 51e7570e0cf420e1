{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "agent-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "agent-bridge.fullname" -}}
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

{{/* chart-version label value. */}}
{{- define "agent-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "agent-bridge.commonLabels" -}}
helm.sh/chart: {{ include "agent-bridge.chart" . }}
app.kubernetes.io/part-of: {{ include "agent-bridge.name" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The bridge's labels and selector labels. */}}
{{- define "agent-bridge.labels" -}}
{{ include "agent-bridge.commonLabels" . }}
{{ include "agent-bridge.selectorLabels" . }}
{{- end }}

{{- define "agent-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end }}

{{/* The in-chart agent stub's names and labels. */}}
{{- define "agent-bridge.stub.fullname" -}}
{{- printf "%s-agent-stub" (include "agent-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-bridge.stub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent-stub
{{- end }}

{{- define "agent-bridge.stub.labels" -}}
{{ include "agent-bridge.commonLabels" . }}
{{ include "agent-bridge.stub.selectorLabels" . }}
{{- end }}

{{/* The demo Redis's names and labels. */}}
{{- define "agent-bridge.redis.fullname" -}}
{{- printf "%s-redis" (include "agent-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-bridge.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "agent-bridge.redis.labels" -}}
{{ include "agent-bridge.commonLabels" . }}
{{ include "agent-bridge.redis.selectorLabels" . }}
{{- end }}

{{/* The ServiceAccount the bridge runs as. */}}
{{- define "agent-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: repository:tag, the tag defaulting to the appVersion, and @digest when
one is given (the runtime then pulls by digest; the tag stays for people).
*/}}
{{- define "agent-bridge.image" -}}
{{- $ref := printf "%s:%s" .image.repository (toString (default .root.Chart.AppVersion .image.tag)) }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" $ref .image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
A duration written like the bridge's flags (250ms, 15s, 5m, 1h) as whole seconds, rounded
up. Use with `include ... | atoi`.
*/}}
{{- define "agent-bridge.seconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $d) }}
{{- fail (printf "duration %q: write it as a number and one unit: 250ms, 15s, 5m, 1h" $d) }}
{{- end }}
{{- $digits := regexFind "^[0-9]+" $d }}
{{- $n := atoi $digits }}
{{- $unit := trimPrefix $digits $d }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else }}{{ mul $n 3600 }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: preStop sleep + drain + margin, or the explicit value, which
must not be shorter (the render fails with the numbers otherwise).
*/}}
{{- define "agent-bridge.terminationGracePeriodSeconds" -}}
{{- $pre := int .Values.lifecycle.preStopSleepSeconds }}
{{- $drain := include "agent-bridge.seconds" .Values.bridge.drainTimeout | atoi }}
{{- $margin := int .Values.lifecycle.marginSeconds }}
{{- $need := add $pre $drain $margin }}
{{- $given := .Values.lifecycle.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $given }}
{{- $need }}
{{- else if lt (int $given) (int $need) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds=%d is shorter than lifecycle.preStopSleepSeconds (%d) + bridge.drainTimeout (%s = %ds) + lifecycle.marginSeconds (%d) = %d: raise it to at least %d, shorten the drain, or leave it null to compute it" (int $given) $pre .Values.bridge.drainTimeout $drain $margin (int $need) (int $need)) }}
{{- else }}
{{- int $given }}
{{- end }}
{{- end }}

{{/*
BRIDGE_AGENTS: NAME=URL pairs, comma-separated; the in-chart stub is added when enabled.
Fails on no agent or a name given twice, as the bridge would at start-up.
*/}}
{{- define "agent-bridge.agents" -}}
{{- $pairs := list }}
{{- $seen := dict }}
{{- range $i, $a := .Values.agents }}
{{- $url := "" }}
{{- if $a.url }}
{{- $url = $a.url }}
{{- else if $a.service }}
{{- $ns := default $.Release.Namespace $a.service.namespace }}
{{- $url = printf "dns://%s.%s.svc.%s:%d" $a.service.name $ns $.Values.clusterDomain (int $a.service.port) }}
{{- else }}
{{- fail (printf "agents[%d] (%s): give a url or a service" $i $a.name) }}
{{- end }}
{{- if hasKey $seen $a.name }}
{{- fail (printf "agents: %q is listed twice" $a.name) }}
{{- end }}
{{- $_ := set $seen $a.name true }}
{{- $pairs = append $pairs (printf "%s=%s" $a.name $url) }}
{{- end }}
{{- if .Values.agentStub.enabled }}
{{- if hasKey $seen .Values.agentStub.agentName }}
{{- fail (printf "agentStub.agentName %q is also listed in agents" .Values.agentStub.agentName) }}
{{- end }}
{{- $pairs = append $pairs (printf "%s=dns://%s.%s.svc.%s:%d" .Values.agentStub.agentName (include "agent-bridge.stub.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.agentStub.port)) }}
{{- end }}
{{- if not $pairs }}
{{- fail "no agent configured: list upstreams in agents, or set agentStub.enabled=true for a demo" }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* Effective minimum number of bridge replicas. */}}
{{- define "agent-bridge.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: the release's identity plus otel.resourceAttributes. */}}
{{- define "agent-bridge.otelResourceAttributes" -}}
{{- $attrs := list (printf "service.namespace=%s" .Release.Namespace) (printf "service.version=%s" .Chart.AppVersion) }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/*
Secret files the bridge reads, as a JSON list of {env, name, key, path}: each is an existing
Secret's key, projected read-only to /etc/agent-bridge/secrets/<path>, and the bridge's
BRIDGE_*_FILE variable points at it. Use with `include ... | fromJsonArray`.
*/}}
{{- define "agent-bridge.secretFiles" -}}
{{- $files := list }}
{{- $a := .Values.auth }}
{{- if $a.jwtSecret.name }}
{{- $files = append $files (dict "env" "BRIDGE_JWT_SECRET_FILE" "name" $a.jwtSecret.name "key" $a.jwtSecret.key "path" "jwt-secret") }}
{{- end }}
{{- if $a.apiKeys.name }}
{{- $files = append $files (dict "env" "BRIDGE_API_KEYS_FILE" "name" $a.apiKeys.name "key" $a.apiKeys.key "path" "api-keys") }}
{{- end }}
{{- if $a.ticketSecret.name }}
{{- $files = append $files (dict "env" "BRIDGE_TICKET_SECRET_FILE" "name" $a.ticketSecret.name "key" $a.ticketSecret.key "path" "ticket-secret") }}
{{- end }}
{{- if $a.agentToken.name }}
{{- $files = append $files (dict "env" "BRIDGE_AGENT_TOKEN_FILE" "name" $a.agentToken.name "key" $a.agentToken.key "path" "agent-token") }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/* Where the mounted secret files live in the bridge container. */}}
{{- define "agent-bridge.secretsDir" -}}
/etc/agent-bridge/secrets
{{- end }}

{{/* The hub the bridge uses: `secret` (hub.existingSecret), `redis` (in-chart demo Redis) or `memory`. */}}
{{- define "agent-bridge.hubKind" -}}
{{- if .Values.hub.existingSecret.name }}secret
{{- else if .Values.redis.enabled }}redis
{{- else }}memory
{{- end }}
{{- end }}

{{/*
Settings the bridge or a multi-replica deployment cannot work without; the render fails with
the fix, as the bridge would at start-up (or, worse, as clients would find out later).
*/}}
{{- define "agent-bridge.checks" -}}
{{- $_ := include "agent-bridge.agents" . }}
{{- $a := .Values.auth }}
{{- if not (or $a.allowAnonymous $a.jwtSecret.name $a.jwksUrl.value $a.jwksUrl.name $a.apiKeys.name) }}
{{- fail "no way to authenticate clients: set auth.jwtSecret.name, auth.jwksUrl or auth.apiKeys.name (existing Secrets), or auth.allowAnonymous=true for a demo on a trusted network" }}
{{- end }}
{{- $multi := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- if and $multi (eq (include "agent-bridge.hubKind" .) "memory") }}
{{- fail "more than one bridge replica (replicaCount > 1 or autoscaling.enabled) needs a shared Redis hub, or threads cannot be resumed on another replica: set hub.existingSecret.name (a Secret holding redis://...) or redis.enabled=true (demo), or run replicaCount=1" }}
{{- end }}
{{- if and $multi (not $a.ticketSecret.name) }}
{{- fail "more than one bridge replica (replicaCount > 1 or autoscaling.enabled) needs a shared stream-ticket key, or a ticket issued by one pod is refused by another: set auth.ticketSecret.name (an existing Secret)" }}
{{- end }}
{{- if eq (int .Values.bridge.port) (int .Values.bridge.adminPort) }}
{{- fail "bridge.adminPort must differ from bridge.port: metrics and probes are served apart from the API" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true" }}
{{- end }}
{{- if and .Values.autoscaling.openStreams.enabled (not .Values.metrics.enabled) }}
{{- fail "autoscaling.openStreams.enabled needs metrics.enabled=true (the bridge_open_streams metric)" }}
{{- end }}
{{- end }}

{{/* The `helm test` pod's labels (the NetworkPolicy lets it reach the API port). */}}
{{- define "agent-bridge.test.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{/*
Where a URL points, as a JSON object {host, port}: the scheme and any path are dropped; the
port defaults from the scheme (443 for TLS schemes: https, grpcs; else 80).
Use with `include ... (dict "url" URL) | fromJson`.
*/}}
{{- define "agent-bridge.urlTarget" -}}
{{- $scheme := regexFind "^[a-z0-9+.-]+://" .url }}
{{- $rest := trimPrefix $scheme .url }}
{{- $authority := regexReplaceAll "[/?#].*$" $rest "" }}
{{- $authority = regexReplaceAll "^.*@" $authority "" }}
{{- $host := $authority }}
{{- $port := ternary 443 80 (regexMatch "(https|grpcs)://$" $scheme) }}
{{- if regexMatch ":[0-9]+$" $authority }}
{{- $port = regexFind "[0-9]+$" $authority | atoi }}
{{- $host = regexReplaceAll ":[0-9]+$" $authority "" }}
{{- end }}
{{- toJson (dict "host" $host "port" $port) }}
{{- end }}

{{/*
NetworkPolicy peers (a YAML list) for traffic to a host: a Service name of this cluster
(`NAME.NAMESPACE.svc...`, or a short name, in the release namespace) becomes its
namespace; an IPv4 address, itself; anything else (outside the cluster) any address.
Use with `include ... (dict "host" HOST "root" $)`.
*/}}
{{- define "agent-bridge.peersFor" -}}
{{- $host := .host }}
{{- $domain := printf ".svc.%s" .root.Values.clusterDomain }}
{{- if regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" $host }}
- ipBlock:
    cidr: {{ printf "%s/32" $host }}
{{- else if or (regexMatch "^[^.]+\\.[^.]+\\.svc$" $host) (and (hasSuffix $domain $host) (eq (len (splitList "." (trimSuffix $domain $host))) 2)) }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ index (splitList "." $host) 1 }}
{{- else if not (contains "." $host) }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .root.Release.Namespace }}
{{- else }}
- ipBlock:
    cidr: 0.0.0.0/0
- ipBlock:
    cidr: ::/0
{{- end }}
{{- end }}
