//! `ferrosim keys …`: the keys that protect profile secrets at rest.
//!
//! - `init` writes a new key-encryption key (KEK) file (0600, never over an
//!   existing file);
//! - `status` shows the KEK given, the data keys stored (and which KEK wraps
//!   each) and how the profile rows are stored;
//! - `rotate` makes a new data key and re-seals every row under it in
//!   chunks while instances keep serving; `rotate --new-kek FILE` re-wraps
//!   the data keys under another KEK (no row touched).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_secrets::Kek;

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, connect_store, open_store};

/// `ferrosim keys …`
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new random key-encryption key (64 hex digits) to a new file, mode 0600.
    Init {
        /// The file to create (default: the configured `[secrets] kek_file`).
        #[arg(long, value_name = "FILE", conflicts_with = "pkcs11_label")]
        out: Option<PathBuf>,
        /// Instead of a file: generate an AES-256 key with this label inside the
        /// token of `[secrets.kek_pkcs11]` (sensitive, never extractable).
        #[arg(long, value_name = "LABEL")]
        pkcs11_label: Option<String>,
    },
    /// The KEK given, the data keys stored, and the profile rows clear or sealed under each key.
    Status,
    /// Rotate: a new data key and every row re-sealed under it (in chunks, while serving);
    /// with --new-kek, re-wrap the data keys under another KEK instead.
    Rotate {
        /// Re-wrap every data key under the KEK in this file (made by `keys init`).
        #[arg(long, value_name = "FILE", conflicts_with = "new_kek_pkcs11_label")]
        new_kek: Option<PathBuf>,
        /// Re-wrap every data key under this key of the `[secrets.kek_pkcs11]`
        /// token (made by `keys init --pkcs11-label`).
        #[arg(long, value_name = "LABEL")]
        new_kek_pkcs11_label: Option<String>,
    },
}

/// Runs `ferrosim keys`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    match args.command {
        KeysCommand::Init {
            pkcs11_label: Some(label),
            ..
        } => {
            let kek = crate::kek::token_key(&cfg.secrets, &label, true)?;
            println!(
                "key-encryption key {} generated as {label:?} in PKCS#11 token {:?} (never \
                 extractable). Give it to every command of the instance with [secrets] \
                 kek_pkcs11_label = {label:?}; `ferrosim serve` then seals the rows the \
                 database holds in clear.",
                kek.id_hex(),
                cfg.secrets
                    .kek_pkcs11
                    .as_ref()
                    .map(|t| t.token.as_str())
                    .unwrap_or_default()
            );
            Ok(())
        }
        KeysCommand::Init { out, .. } => {
            let path = out.or_else(|| cfg.secrets.kek_file.clone()).context(
                "give the file to write with --out (or configure [secrets] kek_file, \
                 FERROSIM_KEK_FILE or --kek-file), or a token key with --pkcs11-label",
            )?;
            init(&path)
        }
        KeysCommand::Status => block_on(status(cfg)),
        KeysCommand::Rotate {
            new_kek,
            new_kek_pkcs11_label,
        } => {
            // Open the new KEK before anything else: a bad one changes nothing.
            let new = match (&new_kek, &new_kek_pkcs11_label) {
                (Some(path), _) => Some((crate::kek::load(path)?, path.display().to_string())),
                (None, Some(label)) => Some((
                    crate::kek::token_key(&cfg.secrets, label, false)?,
                    format!("token key {label:?}"),
                )),
                (None, None) => None,
            };
            block_on(rotate(cfg, new))
        }
    }
}

/// Writes a fresh KEK to `path` (created 0600; an existing file is never replaced).
fn init(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let kek = Kek::generate(&mut rand::rng());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists already: a key-encryption key file is never overwritten \
                 (the data it protects would be lost); choose another file",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("creating {}", path.display())),
        })?;
    let hex = kek
        .to_hex()
        .context("a generated key-encryption key has its bytes")?;
    let text = zeroize::Zeroizing::new(format!("{}\n", hex.as_str()));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "key-encryption key {} written to {} (mode 0600). Keep a copy apart from the database: \
         without it the sealed profile secrets cannot be read. Give it to every command of the \
         instance with [secrets] kek_file, FERROSIM_KEK_FILE or --kek-file; `ferrosim serve` \
         then seals the rows the database holds in clear.",
        kek.id_hex(),
        path.display()
    );
    Ok(())
}

async fn status(cfg: InstanceConfig) -> anyhow::Result<()> {
    let store = connect_store(&cfg, Access::Existing).await?;
    let result = async {
        let keys = store.data_keys().await?;
        let census = store.secrets_census().await?;
        match crate::kek::configured(&cfg.secrets)? {
            Some(kek) => {
                let wraps = !keys.is_empty() && keys.iter().all(|k| k.kek_id == kek.id_hex());
                println!(
                    "key-encryption key: {} from {}{}",
                    kek.id_hex(),
                    crate::kek::describe(&cfg.secrets),
                    if keys.is_empty() {
                        " (no data key yet: the next command that opens the instance makes one)"
                    } else if wraps {
                        " (wraps every data key)"
                    } else {
                        " (does NOT wrap the stored data keys)"
                    }
                );
            }
            None => println!(
                "key-encryption key: none configured ([secrets] kek_file or kek_pkcs11_label)"
            ),
        }
        if keys.is_empty() {
            println!("data keys: none (profile secrets are stored in clear)");
        }
        for k in &keys {
            println!(
                "data key {}: wrapped by key-encryption key {}, made {}",
                k.id, k.kek_id, k.created_at
            );
        }
        let newest = keys.last().map(|k| k.id);
        let under_newest = newest
            .and_then(|n| census.sealed.get(&n))
            .copied()
            .unwrap_or(0);
        let total = census.clear + census.sealed.values().sum::<u64>();
        println!("profiles: {total}");
        println!("  in clear: {}", census.clear);
        for (id, n) in &census.sealed {
            println!("  sealed under data key {id}: {n}");
        }
        println!(
            "  not under the newest data key (to re-seal): {}",
            total - under_newest
        );
        println!("  secrets purged after installation: {}", census.purged);
        Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn rotate(cfg: InstanceConfig, new_kek: Option<(Kek, String)>) -> anyhow::Result<()> {
    if cfg.secrets.kek_file.is_none() && cfg.secrets.kek_pkcs11_label.is_none() {
        bail!(
            "no key-encryption key configured: create one with `ferrosim keys init --out FILE` \
             and give it with [secrets] kek_file, FERROSIM_KEK_FILE or --kek-file (or a token \
             key: [secrets] kek_pkcs11_label)"
        );
    }
    let store = open_store(&cfg, Access::Existing).await?;
    let result = async {
        match new_kek {
            Some((kek, place)) => {
                let old = store.kek_id().unwrap_or_default();
                if old == kek.id_hex() {
                    bail!("{place} holds the key-encryption key in use already");
                }
                let ids = store.rewrap_data_keys(&kek).await?;
                crate::audit_cmd::record(
                    &store,
                    "keys.rotate-kek",
                    &kek.id_hex(),
                    serde_json::json!({ "old_kek": old, "data_keys": ids }),
                )
                .await;
                println!(
                    "data keys {ids:?} re-wrapped: key-encryption key {old} -> {} ({place}). \
                     Running instances keep serving with the data keys they hold; give every \
                     instance and command the new key ([secrets] kek_file, FERROSIM_KEK_FILE, \
                     --kek-file or kek_pkcs11_label) before they next start, then retire the \
                     old one.",
                    kek.id_hex()
                );
            }
            None => {
                let clear_before = store.secrets_census().await?.clear;
                let id = store.add_data_key().await?;
                let done = crate::secrets_reseal::reseal_all(&store).await?;
                if clear_before > 0 {
                    // No clear copy left in SQLite's free pages or WAL.
                    store.scrub_free_space().await?;
                }
                crate::audit_cmd::record(
                    &store,
                    "keys.rotate-data-key",
                    &id.to_string(),
                    serde_json::json!({ "resealed": done.rows, "left": done.left }),
                )
                .await;
                println!(
                    "data key {id} made; {} profile rows re-sealed under it{}",
                    done.rows,
                    if done.left == 0 {
                        String::new()
                    } else {
                        format!(
                            "; {} written meanwhile under an older key: run it again",
                            done.left
                        )
                    }
                );
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
