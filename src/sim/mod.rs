//! The Proxmox VE API simulator: state machine and HTTP surface.
