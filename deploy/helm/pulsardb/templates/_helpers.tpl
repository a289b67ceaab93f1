{{/* Names, labels and the derived cluster topology shared by the templates. */}}

{{- define "pulsardb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release> when it already contains the chart name, else <release>-<chart>; 52 characters
leave room for the "-coordinator" suffix and a StatefulSet's controller-revision label. */}}
{{- define "pulsardb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pulsardb.nodeName" -}}{{ include "pulsardb.fullname" . }}-node{{- end }}
{{- define "pulsardb.coordinatorName" -}}{{ include "pulsardb.fullname" . }}-coordinator{{- end }}

{{- define "pulsardb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "pulsardb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one role ("node" or "coordinator"): pass (dict "ctx" . "role" "node"). */}}
{{- define "pulsardb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pulsardb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/* Pod template labels of one role: the selector labels plus version and manager. */}}
{{- define "pulsardb.podLabels" -}}
{{ include "pulsardb.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "pulsardb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "pulsardb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pulsardb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pulsardb.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "pulsardb.fullname" .)) }}
{{- end }}

{{/* Stable DNS name of node pod i: (dict "ctx" . "i" 0) */}}
{{- define "pulsardb.nodeHost" -}}
{{- $node := include "pulsardb.nodeName" .ctx -}}
{{ $node }}-{{ .i }}.{{ $node }}.{{ .ctx.Release.Namespace }}.svc.{{ .ctx.Values.clusterDomain }}
{{- end }}

{{/* Pods that form the cluster at creation: cluster.initialNodes, or node.replicas when 0. */}}
{{- define "pulsardb.initialNodes" -}}
{{- if gt (int .Values.cluster.initialNodes) 0 }}{{ int .Values.cluster.initialNodes }}{{ else }}{{ int .Values.node.replicas }}{{ end }}
{{- end }}

{{/* Initial Raft members, identical on every node: id=host:apiport:raftport for pods
0..initialNodes-1 (the CLI's --peers format). Pods beyond them join (--join). */}}
{{- define "pulsardb.peers" -}}
{{- $peers := list }}
{{- range $i := until (int (include "pulsardb.initialNodes" .)) }}
{{- $host := include "pulsardb.nodeHost" (dict "ctx" $ "i" $i) }}
{{- $peers = append $peers (printf "%s-%d=%s:%d:%d" (include "pulsardb.nodeName" $) $i $host (int $.Values.node.ports.api) (int $.Values.node.ports.raft)) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/* Node API addresses for the coordinators' --nodes: host:apiport,... */}}
{{- define "pulsardb.nodeAddresses" -}}
{{- $nodes := list }}
{{- range $i := until (int .Values.node.replicas) }}
{{- $nodes = append $nodes (printf "%s:%d" (include "pulsardb.nodeHost" (dict "ctx" $ "i" $i)) (int $.Values.node.ports.api)) }}
{{- end }}
{{- join "," $nodes }}
{{- end }}

{{/* Pod anti-affinity of one role: (dict "ctx" . "role" "node" "mode" "soft") */}}
{{- define "pulsardb.antiAffinity" -}}
{{- if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "pulsardb.selectorLabels" (dict "ctx" .ctx "role" .role) | nindent 10 }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "pulsardb.selectorLabels" (dict "ctx" .ctx "role" .role) | nindent 12 }}
{{- else if ne .mode "none" }}
{{- fail (printf "antiAffinity must be soft, hard or none, not %q" .mode) }}
{{- end }}
{{- end }}

{{/* A secret value: the configured one, else the one already in the cluster (upgrade), else a
new random one (first install). (dict "ctx" . "key" "admin-token" "value" "...") */}}
{{- define "pulsardb.secretValue" -}}
{{- if .value }}
{{- .value | b64enc }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "pulsardb.secretName" .ctx) }}
{{- if and $existing (index ($existing.data | default dict) .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum 40 | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{/* Checks of values that would render a broken cluster. */}}
{{- define "pulsardb.validate" -}}
{{- $rf := int .Values.cluster.replicationFactor }}
{{- if lt $rf 1 }}
{{- fail "cluster.replicationFactor must be at least 1" }}
{{- end }}
{{- if eq (mod $rf 2) 0 }}
{{- fail (printf "cluster.replicationFactor must be odd (Raft needs a majority; %d tolerates no more failures than %d)" $rf (sub $rf 1)) }}
{{- end }}
{{- if lt (int .Values.node.replicas) $rf }}
{{- fail (printf "node.replicas (%d) must be >= cluster.replicationFactor (%d)" (int .Values.node.replicas) $rf) }}
{{- end }}
{{- if lt (int .Values.cluster.shards) 1 }}
{{- fail "cluster.shards must be at least 1" }}
{{- end }}
{{- if gt (int (include "pulsardb.initialNodes" .)) (int .Values.node.replicas) }}
{{- fail (printf "cluster.initialNodes (%d) must be <= node.replicas (%d)" (int .Values.cluster.initialNodes) (int .Values.node.replicas)) }}
{{- end }}
{{- if lt (int (include "pulsardb.initialNodes" .)) $rf }}
{{- fail (printf "cluster.initialNodes must be >= cluster.replicationFactor (%d)" $rf) }}
{{- end }}
{{- include "pulsardb.checkFixedTopology" . }}
{{- if and .Values.coordinator.autoscaling.enabled (gt (int .Values.coordinator.autoscaling.minReplicas) (int .Values.coordinator.autoscaling.maxReplicas)) }}
{{- fail "coordinator.autoscaling.minReplicas must be <= maxReplicas" }}
{{- end }}
{{- end }}

{{/* On upgrade: the running StatefulSet's --peers, --shards and --replication-factor must stay.
The nodes record the cluster's shape at creation and refuse to start with another one (changing
it would hash series to other shards); a changed peer list would crash-loop every restarted node.
Membership changes go through the admin API first (docs/operations.md, "Scaling"); only then
set node.allowTopologyChange. `helm template` without a cluster cannot look anything up. */}}
{{- define "pulsardb.checkFixedTopology" -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "pulsardb.nodeName" .) }}
{{- if and $sts (not .Values.node.allowTopologyChange) }}
{{- $want := dict "--peers" (include "pulsardb.peers" .) "--shards" (toString .Values.cluster.shards) "--replication-factor" (toString .Values.cluster.replicationFactor) }}
{{- range $c := $sts.spec.template.spec.containers }}
{{- if eq $c.name "node" }}
{{- $args := $c.args | default list }}
{{- range $i, $a := $args }}
{{- if and (hasKey $want $a) (lt (add1 $i) (len $args)) }}
{{- $have := index $args (add1 $i) }}
{{- if ne $have (get $want $a) }}
{{- fail (printf "%s of the running cluster is %q; this upgrade would make it %q. node.replicas, cluster.shards and cluster.replicationFactor are fixed at creation: change the membership through the admin API first, then set node.allowTopologyChange=true (docs/operations.md, Scaling)" $a $have (get $want $a)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
