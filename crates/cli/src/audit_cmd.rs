//! `ferrosim audit …`: the instance's audit trail (`ferrosim-audit`) —
//! verify the hash chain and its checkpoints, export it as JSON lines, sign
//! a checkpoint; and the `[audit]` section of the configuration, which makes
//! `serve` record and sign checkpoints periodically:
//!
//! ```toml
//! [audit]
//! enabled = true                         # record (default)
//! checkpoint_key = "/etc/ferrosim/audit-key.pem"   # ECDSA P-256, PKCS#8 PEM
//! checkpoint_interval_secs = 3600
//! checkpoint_file = "/var/lib/ferrosim-audit/checkpoints.jsonl"  # a copy outside the database
//! ```
//!
//! Commands run on the host (operators, profile types, tokens, orders, eIM
//! queueing) record themselves with [`record`] as `cli:<user>`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_audit::{Actor, AuditLog, AuditRecord, Checkpoint};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_ids::Timestamp;
use ferrosim_store::SqlStore;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, open_store};

/// The `[audit]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record privileged calls and state changes (ES2+, ES9+ order steps,
    /// eIM results, REST API changes).
    pub enabled: bool,
    /// Sign checkpoints with this ECDSA P-256 key (PKCS#8 PEM).
    pub checkpoint_key: Option<PathBuf>,
    /// Seconds between checkpoints.
    pub checkpoint_interval_secs: u64,
    /// Also append each checkpoint to this file (JSON lines): keep it away
    /// from the database, so that someone who can rewrite the database
    /// cannot remove the checkpoints too.
    pub checkpoint_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            checkpoint_key: None,
            checkpoint_interval_secs: 3600,
            checkpoint_file: None,
        }
    }
}

impl AuditConfig {
    /// The auditor of `serve` and, with a key, the task that signs
    /// checkpoints (runs until the process ends).
    pub fn start(&self, store: &SqlStore) -> anyhow::Result<ferrosim_server::audit::Auditor> {
        if !self.enabled {
            return Ok(ferrosim_server::audit::Auditor::disabled());
        }
        let log: Arc<dyn AuditLog> = Arc::new(store.clone());
        if let Some(path) = &self.checkpoint_key {
            let key = load_key(path)?;
            if self.checkpoint_interval_secs == 0 {
                bail!("[audit] checkpoint_interval_secs must be at least 1");
            }
            let every = Duration::from_secs(self.checkpoint_interval_secs);
            let file = self.checkpoint_file.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut last = None;
                loop {
                    tokio::time::sleep(every).await;
                    match log.head().await {
                        Ok(head) if head.is_some() && head != last => {
                            match checkpoint(&*log, &key, file.as_deref()).await {
                                Ok(cp) => {
                                    info!(seq = cp.seq, "audit checkpoint signed");
                                    last = head;
                                }
                                Err(e) => warn!(error = %e, "audit checkpoint failed"),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "audit checkpoint: reading the log failed"),
                    }
                }
            });
        }
        Ok(ferrosim_server::audit::Auditor::start(log))
    }
}

/// `ferrosim audit …`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every entry's hash and link and the checkpoints; names each
    /// edited, removed, reordered entry and a truncated tail. Exit status 1
    /// when anything is wrong.
    Verify {
        /// Checkpoints kept outside the database (JSON lines, as written by
        /// `checkpoint --out` or `[audit] checkpoint_file`).
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Accept only checkpoints signed by this key (its private PEM; the
        /// public part is used).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print entries as JSON lines, oldest first.
    Export {
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a checkpoint of the last entry and keep it in the database (and
    /// in `--out`).
    Checkpoint {
        /// ECDSA P-256 key, PKCS#8 PEM.
        #[arg(long)]
        key: PathBuf,
        /// Also append the checkpoint to this JSON-lines file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `ferrosim audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    // Check arguments before touching the database.
    let key = match &args.command {
        AuditCommand::Verify { key: Some(k), .. } | AuditCommand::Checkpoint { key: k, .. } => {
            Some(load_key(k)?)
        }
        _ => None,
    };
    let extra = match &args.command {
        AuditCommand::Verify {
            checkpoints: Some(f),
            ..
        } => read_checkpoints(f)?,
        _ => Vec::new(),
    };
    let mut failed = false;
    block_on(async {
        let store = open_store(&cfg, Access::Existing).await?;
        let log: &dyn AuditLog = &store;
        let result = async {
            match args.command {
                AuditCommand::Verify { json, .. } => {
                    let pk = key.as_ref().map(|k| k.public_key_sec1().to_vec());
                    let report = log.verify(extra, pk).await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        for p in &report.problems {
                            println!("TAMPERED: {p}");
                        }
                        println!(
                            "{} entries (last {}), {} checkpoints: {}",
                            report.entries,
                            report.last_seq,
                            report.checkpoints,
                            if report.ok() { "intact" } else { "NOT intact" }
                        );
                    }
                    failed = !report.ok();
                }
                AuditCommand::Export { after, out } => export(log, after, out.as_deref()).await?,
                AuditCommand::Checkpoint { out, .. } => {
                    let Some(key) = &key else {
                        bail!("--key is needed");
                    };
                    let cp = checkpoint(log, key, out.as_deref()).await?;
                    println!("checkpoint of entry {} signed", cp.seq);
                }
            }
            Ok(())
        }
        .await;
        store.close().await;
        result
    })?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Appends `record` for a command run at the host's command line.
pub async fn record(store: &SqlStore, action: &str, subject: &str, details: serde_json::Value) {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let log: &dyn AuditLog = store;
    let r = AuditRecord::new(Timestamp::now(), Actor::cli(&user), action, subject)
        .with_details(details);
    if let Err(e) = log.append(vec![r]).await {
        warn!(error = %e, action, "the audit record of this command was not stored");
    }
}

fn load_key(path: &Path) -> anyhow::Result<SoftwareKey> {
    SoftwareKey::from_file(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("audit key {}", path.display()))
}

fn read_checkpoints(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("checkpoints file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a checkpoint", path.display(), i + 1))
        })
        .collect()
}

async fn checkpoint(
    log: &dyn AuditLog,
    key: &dyn KeySource,
    out: Option<&Path>,
) -> anyhow::Result<Checkpoint> {
    let Some(cp) = log.checkpoint(key, Timestamp::now().0).await? else {
        bail!("the audit log is empty: nothing to checkpoint");
    };
    if let Some(out) = out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("checkpoints file {}", out.display()))?;
        writeln!(f, "{}", serde_json::to_string(&cp)?)?;
        f.sync_all()?;
    }
    Ok(cp)
}

async fn export(log: &dyn AuditLog, mut after: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let mut w: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("--out {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    loop {
        let page = log.entries(after, 1000).await?;
        for e in &page {
            writeln!(w, "{}", serde_json::to_string(e)?)?;
        }
        match page.last() {
            Some(e) if page.len() == 1000 => after = e.seq,
            _ => break,
        }
    }
    w.flush()?;
    Ok(())
}
