//! `pve-sim`: the Proxmox VE API simulator binary.
//!
//! ```text
//! pve-sim [--listen 127.0.0.1:8006] [--config FILE] [--token 'USER@REALM!ID=SECRET']...
//!         [--seed N] [--cert-out PATH] [--clock-speed F]
//! ```
//! Prints exactly one line on stdout when ready: `pve-sim listening on https://ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use proxmox_lxc_operator::sim::{start, SimConfig, TokenConfig};

/// Proxmox VE API simulator (HTTPS, self-signed certificate).
#[derive(Debug, Parser)]
#[command(name = "pve-sim", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// YAML configuration file (see examples/pve-sim/config.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Extra API token `USER@REALM!ID=SECRET` (repeatable). With --token and no --config,
    /// only the given tokens are accepted.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Seed for every random draw (deterministic mode).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the generated certificate (PEM) here.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Task clock speed-up (overrides the config).
    #[arg(long)]
    clock_speed: Option<f64>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let mut cfg = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
            SimConfig::from_yaml(&text).unwrap_or_else(|e| fail(&format!("invalid config {}: {e}", path.display())))
        }
        None => SimConfig::default(),
    };
    if !args.tokens.is_empty() {
        if args.config.is_none() {
            cfg.tokens.clear();
        }
        for t in &args.tokens {
            let t = TokenConfig::parse(t)
                .unwrap_or_else(|| fail(&format!("invalid --token '{t}', want USER@REALM!ID=SECRET")));
            cfg.tokens.retain(|x| x.id != t.id);
            cfg.tokens.push(t);
        }
    }
    if args.seed.is_some() {
        cfg.seed = args.seed;
    }
    if let Some(s) = args.clock_speed {
        cfg.clock_speed = s;
    }
    cfg.listen = Some(args.listen);
    let sim = start(cfg).await.unwrap_or_else(|e| fail(&e.to_string()));
    if let Some(p) = &args.cert_out {
        std::fs::write(p, sim.cert_pem()).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", p.display())));
    }
    println!("pve-sim listening on {}", sim.base_url());
    eprintln!("pve-sim: certificate fingerprint {}", sim.fingerprint());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
}

fn fail(msg: &str) -> ! {
    eprintln!("pve-sim: {msg}");
    std::process::exit(2);
}
