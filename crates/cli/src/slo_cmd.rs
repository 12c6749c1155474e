//! `ferrosim slo …`: Prometheus rules and burn-rate alerts from OpenSLO
//! files, the normalised OpenSLO export, and the Grafana dashboard.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrosim_telemetry::grafana::dashboard_json;
use ferrosim_telemetry::slo::{DEFAULT_SLOS, export_openslo, generate_rules, parse_openslo};

/// `ferrosim slo …`
#[derive(Debug, Args)]
pub struct SloArgs {
    #[command(subcommand)]
    command: SloCommand,
}

#[derive(Debug, Subcommand)]
enum SloCommand {
    /// Write Prometheus recording rules and multiwindow burn-rate alerts
    /// (Sloth naming) for the SLOs of an OpenSLO v1 file.
    Rules {
        /// OpenSLO v1 YAML; ferrosim's own SLOs when not given.
        #[arg(long, value_name = "FILE")]
        slo: Option<PathBuf>,
        /// Where to write the rule file (standard output when not given).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write the SLOs back as normalised OpenSLO v1 YAML.
    Export {
        /// OpenSLO v1 YAML; ferrosim's own SLOs when not given.
        #[arg(long, value_name = "FILE")]
        slo: Option<PathBuf>,
        /// Where to write (standard output when not given).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write the Grafana dashboard JSON.
    Dashboard {
        /// Where to write (standard output when not given).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs `ferrosim slo …`.
pub fn run(args: SloArgs) -> anyhow::Result<()> {
    match args.command {
        SloCommand::Rules { slo, out } => {
            let slos = parse_openslo(&read_slos(slo.as_deref())?)?;
            write(out.as_deref(), &generate_rules(&slos)?)
        }
        SloCommand::Export { slo, out } => {
            let slos = parse_openslo(&read_slos(slo.as_deref())?)?;
            write(out.as_deref(), &export_openslo(&slos)?)
        }
        SloCommand::Dashboard { out } => write(out.as_deref(), &dashboard_json()),
    }
}

fn read_slos(path: Option<&Path>) -> anyhow::Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())),
        None => Ok(DEFAULT_SLOS.to_owned()),
    }
}

fn write(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
