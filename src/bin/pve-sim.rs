//! `pve-sim`: the Proxmox VE API simulator binary.
fn main() {
    eprintln!("pve-sim: not built yet");
    std::process::exit(2);
}
