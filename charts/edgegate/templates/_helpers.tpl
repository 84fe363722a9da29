{{/* Names, labels and the few values every template derives the same way. */}}

{{- define "edgegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgegate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "edgegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edgegate.labels" -}}
helm.sh/chart: {{ include "edgegate.chart" . }}
{{ include "edgegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "edgegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgegate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "edgegate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
The ports the process listens on. With hostNetwork the pod shares the node's network namespace, so it listens on
the node ports directly (hostPorts.*, falling back to ports.* when a hostPort is 0). Without it, it listens on the
unprivileged ports.* and the kubelet maps hostPorts.* onto them.
*/}}
{{- define "edgegate.httpListenPort" -}}
{{- if and .Values.hostNetwork (gt (int .Values.hostPorts.http) 0) -}}
{{- .Values.hostPorts.http -}}
{{- else -}}
{{- .Values.ports.http -}}
{{- end -}}
{{- end -}}

{{- define "edgegate.httpsListenPort" -}}
{{- if and .Values.hostNetwork (gt (int .Values.hostPorts.https) 0) -}}
{{- .Values.hostPorts.https -}}
{{- else -}}
{{- .Values.ports.https -}}
{{- end -}}
{{- end -}}

{{/* "true" when the process itself must bind a port below 1024 (then, and only then, NET_BIND_SERVICE). */}}
{{- define "edgegate.bindsPrivilegedPort" -}}
{{- $low := false -}}
{{- if lt (int (include "edgegate.httpListenPort" .)) 1024 -}}{{- $low = true -}}{{- end -}}
{{- if and .Values.tls.enabled (lt (int (include "edgegate.httpsListenPort" .)) 1024) -}}{{- $low = true -}}{{- end -}}
{{- if lt (int .Values.ports.admin) 1024 -}}{{- $low = true -}}{{- end -}}
{{- if lt (int .Values.ports.adminDebug) 1024 -}}{{- $low = true -}}{{- end -}}
{{- ternary "true" "" $low -}}
{{- end -}}

{{/*
Pod shutdown budget: preStop sleep + drain delay (still listening, /readyz failing) + drain timeout (in-flight
requests finish) + a margin for process exit. terminationGracePeriodSeconds must exceed it, or the kubelet
SIGKILLs requests that were still draining.
*/}}
{{- define "edgegate.shutdownBudgetSeconds" -}}
{{- add .Values.drain.preStopSleepSeconds .Values.drain.delaySeconds .Values.drain.timeoutSeconds -}}
{{- end -}}

{{- define "edgegate.terminationGracePeriodSeconds" -}}
{{- $budget := int (include "edgegate.shutdownBudgetSeconds" .) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $budget -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than drain.preStopSleepSeconds + drain.delaySeconds + drain.timeoutSeconds (%d), or the kubelet kills requests that are still draining" (int .Values.terminationGracePeriodSeconds) $budget) -}}
{{- end -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $budget 5 -}}
{{- end -}}
{{- end -}}

{{/* The controller's API rights, generated from src/control/sources/kube/rbac.ts (npm run gen:rbac); never hand-copied. */}}
{{- define "edgegate.rbacRules" -}}
{{- $raw := .Files.Get "files/rbac-rules.json" -}}
{{- if not $raw -}}
{{- fail "files/rbac-rules.json is missing from the chart: run npm run gen:rbac" -}}
{{- end -}}
{{- $raw | fromJson | toJson -}}
{{- end -}}

{{/* An int-or-string value (1 or "10%") as YAML: a number bare, a percentage quoted. */}}
{{- define "edgegate.intOrString" -}}
{{- if kindIs "string" . -}}{{- quote . -}}{{- else -}}{{- int . -}}{{- end -}}
{{- end -}}

{{/*
"true" when two gateway pods can run on one node at once, i.e. a rolling update can surge: with hostNetwork (the pod
declares no ports, see the DaemonSet) or when no host port is published. A pod publishing hostPorts without
hostNetwork cannot have a twin on its node: the scheduler places no second pod with the same host port.
*/}}
{{- define "edgegate.canSurge" -}}
{{- $hostPorts := or (gt (int .Values.hostPorts.http) 0) (and .Values.tls.enabled (gt (int .Values.hostPorts.https) 0)) -}}
{{- ternary "true" "" (or .Values.hostNetwork (not $hostPorts)) -}}
{{- end -}}

{{/* "true" when an intOrString update-strategy value is zero (0 or "0%"). */}}
{{- define "edgegate.isZero" -}}
{{- if kindIs "string" . -}}{{- ternary "true" "" (eq (trimSuffix "%" .) "0") -}}{{- else -}}{{- ternary "true" "" (eq (int .) 0) -}}{{- end -}}
{{- end -}}

{{/*
The DaemonSet's rollingUpdate: the values, or where they are null the strategy that loses nothing on this kind of
node (values.yaml, updateStrategy). Fails on a surge the scheduler could never place.
*/}}
{{- define "edgegate.rollingUpdate" -}}
{{- $canSurge := include "edgegate.canSurge" . -}}
{{- $surge := .Values.updateStrategy.maxSurge -}}
{{- if kindIs "invalid" $surge -}}{{- $surge = ternary 1 0 (eq $canSurge "true") -}}{{- end -}}
{{- $surgeZero := include "edgegate.isZero" $surge -}}
{{- $unavailable := .Values.updateStrategy.maxUnavailable -}}
{{- if kindIs "invalid" $unavailable -}}{{- $unavailable = ternary 1 0 (eq $surgeZero "true") -}}{{- end -}}
{{- if and (not $surgeZero) (not $canSurge) -}}
{{- fail (printf "updateStrategy.maxSurge is %v, but the pods publish hostPorts without hostNetwork: the scheduler places no second pod with the same host port on a node, so the surge pod would stay Pending and the rollout would never finish. Use hostNetwork: true, hostPorts 0, or maxSurge 0" $surge) -}}
{{- end -}}
{{- if and $surgeZero (include "edgegate.isZero" $unavailable) -}}
{{- fail "updateStrategy.maxSurge and updateStrategy.maxUnavailable cannot both be 0: the rollout could never replace a pod" -}}
{{- end -}}
maxSurge: {{ include "edgegate.intOrString" $surge }}
maxUnavailable: {{ include "edgegate.intOrString" $unavailable }}
{{- end -}}

{{/*
OTEL_RESOURCE_ATTRIBUTES of the tracing spans: the pod, its namespace and node (downward API variables declared in
the container's env), then tracing.resourceAttributes (sorted by key).
*/}}
{{- define "edgegate.tracingResource" -}}
{{- $parts := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.node.name=$(NODE_NAME)" -}}
{{- range $k, $v := .Values.tracing.resourceAttributes -}}
{{- $parts = append $parts (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $parts -}}
{{- end -}}
