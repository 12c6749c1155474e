//! The key-encryption key (KEK) of an instance: read from its file
//! (`[secrets] kek_file`, `FERROSIM_KEK_FILE`, `--kek-file`) and given to
//! the store, so that every command opening the instance seals profile
//! secrets; a database whose secrets are sealed is refused without it.
//!
//! Errors name the file and what is wrong with it, never the key.

use std::path::Path;

use anyhow::{Context, bail};
use ferrosim_secrets::Kek;
use ferrosim_store::SqlStore;

/// Reads a KEK file: 32 raw bytes or 64 hex digits. Warns when other
/// users may read it.
pub fn load(path: &Path) -> anyhow::Result<Kek> {
    use std::os::unix::fs::PermissionsExt;
    let content = zeroize::Zeroizing::new(std::fs::read(path).with_context(|| {
        format!(
            "reading the key-encryption key file {} ([secrets] kek_file, FERROSIM_KEK_FILE, \
             --kek-file; `ferrosim keys init` makes one)",
            path.display()
        )
    })?);
    let kek = Kek::from_file_content(&content)
        .with_context(|| format!("the key-encryption key file {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the key-encryption key file is open to other users: chmod 600 it"
        );
    }
    Ok(kek)
}

/// `store` sealing with the KEK of `kek_file`; without one, refuses a
/// database whose secrets are sealed (nothing could open them, and rows
/// written in clear would sit beside sealed ones).
pub async fn apply(store: SqlStore, kek_file: Option<&Path>) -> anyhow::Result<SqlStore> {
    let Some(path) = kek_file else {
        let keys = match store.data_keys().await {
            Ok(k) => k,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        if let Some(first) = keys.first() {
            store.close().await;
            bail!(
                "the instance's profile secrets are encrypted (data keys wrapped by the \
                 key-encryption key {}): give its file with [secrets] kek_file, \
                 FERROSIM_KEK_FILE or --kek-file",
                first.kek_id
            );
        }
        return Ok(store);
    };
    let kek = match load(path) {
        Ok(k) => k,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let id = kek.id_hex();
    let probe = store.clone();
    match store.with_kek(kek).await {
        Ok(s) => Ok(s),
        Err(e) => {
            probe.close().await;
            Err(anyhow::Error::new(e).context(format!(
                "the key-encryption key {id} of {} does not open the instance's data keys",
                path.display()
            )))
        }
    }
}
