{{/*
The operator's rules on the watched namespaces (a ClusterRole, or a Role per watched namespace).
Least privilege: no list/watch on Secrets or ConfigMaps (read by name), no pods, no
deletes except our own LxcBackups (retention) and the Services/EndpointSlices of published ports.
*/}}
{{- define "plo.operatorRules" -}}
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters, lxccontainers, lxctemplates, lxcbackupschedules, lxcbackups]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters/status, lxccontainers/status, lxctemplates/status, lxcbackupschedules/status, lxcbackups/status]
  verbs: [get, patch, update]
- apiGroups: [pve.lxc.dev]
  resources: [proxmoxclusters/finalizers, lxccontainers/finalizers, lxctemplates/finalizers, lxcbackupschedules/finalizers, lxcbackups/finalizers]
  verbs: [update]
# Schedules create backups; retention deletes the oldest.
- apiGroups: [pve.lxc.dev]
  resources: [lxcbackups]
  verbs: [create, delete]
# Credential, password, CA and app env Secrets, and app env ConfigMaps: read by name only.
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Published container ports: a Service without selector + an EndpointSlice per LxcContainer.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch, create, patch, update, delete]
{{- end }}
