//! `proxmox-lxc-operator`: the operator binary.
use clap::{Parser, Subcommand};
use proxmox_lxc_operator::telemetry::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(version, about = "Manage Proxmox VE LXC containers as Kubernetes resources")]
struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", global = true, env = "LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator.
    Run,
    /// Print every CRD as one multi-document YAML (or write one file per CRD with --out-dir).
    Crds {
        /// Write one `<kind>.yaml` per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir: None } => {
            print!("{}", proxmox_lxc_operator::crd::all_crds_yaml()?);
            Ok(())
        }
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in proxmox_lxc_operator::crd::all_crds() {
                std::fs::write(dir.join(file), proxmox_lxc_operator::crd::crd_yaml(&crd)?)?;
            }
            Ok(())
        }
        Command::Run => {
            telemetry::init(cli.log_format, "info");
            tracing::info!("operator starting");
            Ok(())
        }
    }
}
