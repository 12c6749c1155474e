//! `ferrosim`: the one binary of the platform.
//!
//! Each capability is a subcommand; the work itself lives in the library
//! crates, this file only parses arguments and wires them together.

use clap::{Parser, Subcommand};

/// ferrosim: eSIM activation platform (GSMA SGP.22 SM-DP+, virtual eUICC, LPA).
#[derive(Debug, Parser)]
#[command(name = "ferrosim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and the features compiled in.
    Version,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROSIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("ferrosim {}", env!("CARGO_PKG_VERSION"));
        }
    }
    Ok(())
}
