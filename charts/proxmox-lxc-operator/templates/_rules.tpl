{{/*
The operator's rules on the cluster-scoped kinds: always a ClusterRole, whatever watchNamespaces
says (ProxmoxClusters and ProxmoxTenants are cluster-scoped; Namespaces are watched, metadata
only, for the tenants' namespaceSelectors). With metrics.secure, the reviews that authenticate
and authorize a /metrics scraper.
*/}}
{{- define "plo.clusterScopedRules" -}}
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters, proxmoxtenants]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters/status, proxmoxtenants/status]
  verbs: [get, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters/finalizers, proxmoxtenants/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
# Only our own eight CRDs: the operator checks they are Established before it starts.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  resourceNames:
    - proxmoxclusters.pve.lxc.dev
    - proxmoxtenants.pve.lxc.dev
    - lxccontainers.pve.lxc.dev
    - lxctemplates.pve.lxc.dev
    - lxcbackupschedules.pve.lxc.dev
    - lxcbackups.pve.lxc.dev
    - lxcsnapshots.pve.lxc.dev
    - lxcsnapshotschedules.pve.lxc.dev
  verbs: [get]
{{- if .Values.virtualNodes.enabled }}
# Virtual nodes: the operator registers a Node per Proxmox node and keeps its status.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
{{- end }}
{{- if .Values.metrics.secure }}
# /metrics: the scraper's bearer token is checked with a TokenReview, its right to
# `get /metrics` with a SubjectAccessReview.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end }}

{{/*
The operator's rules on the watched namespaces (a ClusterRole, or a Role per watched namespace).
Least privilege: no pods, no list/watch of Secrets, ConfigMaps, Services or EndpointSlices (read by
name only), no deletes except our own LxcBackups and LxcSnapshots (retention) and the Services/EndpointSlices of published ports.
With rbac.tenantSecrets, Secret `get` for `auth.passwordSecretRef` and `app.env` (by name).
*/}}
{{- define "plo.operatorRules" -}}
- apiGroups: [pve.lxc.dev]
  resources: [lxccontainers, lxctemplates, lxcbackupschedules, lxcbackups, lxcsnapshots, lxcsnapshotschedules]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [lxccontainers/status, lxctemplates/status, lxcbackupschedules/status, lxcbackups/status, lxcsnapshots/status, lxcsnapshotschedules/status]
  verbs: [get, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [lxccontainers/finalizers, lxctemplates/finalizers, lxcbackupschedules/finalizers, lxcbackups/finalizers, lxcsnapshots/finalizers, lxcsnapshotschedules/finalizers]
  verbs: [update]
# Schedules create backups and snapshots; retention deletes the oldest.
- apiGroups: [pve.lxc.dev]
  resources: [lxcbackups, lxcsnapshots]
  verbs: [create, delete]
{{- if .Values.rbac.tenantSecrets }}
# Root password and app env Secrets (auth.passwordSecretRef, app.env valueFrom), by name only.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
# App env ConfigMaps (app.env valueFrom), by name only.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# Events: core/v1, with lastTimestamp and count (what `kubectl get events` sorts and counts)
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# Published container ports: a Service without selector + an EndpointSlice per LxcContainer,
# read by name (never listed or watched).
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, update, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, create, patch, update, delete]
{{- if .Values.virtualNodes.enabled }}
# Virtual nodes: Pods bound to them run as child LxcContainers; their status is written as a
# kubelet writes it, Pods with our scheduler name are bound, finished deletions completed.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch, update]
- apiGroups: [""]
  resources: [pods/binding]
  verbs: [create]
- apiGroups: [pve.lxc.dev]
  resources: [lxccontainers]
  verbs: [create, delete]
{{- end }}
{{- end }}

{{/* What tenants may read in their namespaces: no status writes, no clusters, no tenants. */}}
{{- define "plo.tenantResources" -}}
[lxccontainers, lxctemplates, lxcbackups, lxcbackupschedules, lxcsnapshots, lxcsnapshotschedules]
{{- end }}
