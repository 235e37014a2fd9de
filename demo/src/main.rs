//! `causeway-demo`: the one-command local mesh runner and the demo applications.
//!
//! The mesh runner arrives with the demo issue; this build only parses its command line and
//! configuration so that the binary's interface is stable for scripts and docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Runs the Causeway demo mesh on this machine.
#[derive(Debug, Parser)]
#[command(name = "causeway-demo", version, about)]
struct Cli {
    /// YAML configuration file for the demo.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration file and exit (0 valid, 2 invalid).
    #[arg(long)]
    validate: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(path) = &cli.config
        && let Err(error) = std::fs::read_to_string(path)
    {
        tracing::error!(path = %path.display(), %error, "cannot read demo config");
        return ExitCode::from(2);
    }
    if cli.validate {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    tracing::error!("the local demo mesh is not part of this build yet; see README.md");
    ExitCode::FAILURE
}
