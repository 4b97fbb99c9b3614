//! The Proxmox VE API client. This module never imports `kube`.
