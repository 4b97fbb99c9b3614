{{/* Chart name, truncated to 63 characters. */}}
{{- define "plo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-qualified unless it already contains the chart name. */}}
{{- define "plo.fullname" -}}
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

{{- define "plo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "plo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "plo.labels" -}}
helm.sh/chart: {{ include "plo.chart" . }}
{{ include "plo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: proxmox-lxc-operator
{{- end }}

{{- define "plo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election: on when asked for or when more than one replica runs. */}}
{{- define "plo.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "plo.leaseName" -}}
{{- default (include "plo.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The watched namespaces, de-duplicated, as a list. */}}
{{- define "plo.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- end }}

{{- define "plo.credentialsSecretName" -}}
{{- default (printf "%s-credentials" .Values.proxmoxCluster.name) .Values.proxmoxCluster.existingSecret }}
{{- end }}

{{/*
PodDisruptionBudget apiVersion: policy/v1 where the cluster serves it (1.21+), policy/v1beta1
before. Offline renders (helm template) list a fixed set of API versions, so the Kubernetes
version (--kube-version) decides there too.
*/}}
{{- define "plo.pdbApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end }}
{{- end }}
