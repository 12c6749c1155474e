//! Re-sealing profile secrets in place, a chunk per short transaction:
//! the clear rows of a database made before sealing (migration, run by
//! `serve` in the background when started with a key-encryption key) and
//! the rows of older data keys (`ferrosim keys rotate`). Serving goes on
//! meanwhile: every row stays readable (clear rows as they are, sealed ones
//! under any data key the store holds), each row is compared-and-set
//! against what was read, and a crash loses nothing (a rerun finds what is
//! left).

use std::time::Duration;

use ferrosim_smdp::store::StoreError;
use ferrosim_store::SqlStore;
use tracing::{info, warn};

/// Rows re-sealed per transaction.
pub const RESEAL_CHUNK: u32 = 500;

/// Passes over the table at most: rows written meanwhile by an instance
/// that had not seen the newest data key yet need another pass.
const MAX_PASSES: u32 = 5;

/// What a re-sealing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Rows sealed under the newest data key.
    pub rows: u64,
    /// Rows still not under it (written meanwhile under an older key by
    /// another instance; a later run takes them).
    pub left: u64,
}

/// Seals every row not under the newest data key, in chunks of
/// [`RESEAL_CHUNK`] with a short pause between them (requests waiting for
/// the writer go first).
pub async fn reseal_all(store: &SqlStore) -> Result<Resealed, StoreError> {
    let mut done = Resealed::default();
    for _ in 0..MAX_PASSES {
        let mut after: Option<String> = None;
        loop {
            let r = store.reseal_chunk(after.as_deref(), RESEAL_CHUNK).await?;
            done.rows += r.resealed;
            after = r.next_after;
            if after.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done.left = store.rows_to_reseal().await?;
        if done.left == 0 {
            break;
        }
    }
    Ok(done)
}

/// For `serve` started with a key-encryption key: seals in the background
/// the rows an older database holds in clear (and rows of older data keys
/// an interrupted rotation left), then on SQLite rebuilds the file so that
/// no clear copy stays in its free pages or WAL. Returns the task, or
/// `None` when nothing is to do.
pub async fn spawn_migration(
    store: &SqlStore,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if !store.seals_secrets() {
        return Ok(None);
    }
    let census = store.secrets_census().await?;
    let pending = store.rows_to_reseal().await?;
    if pending == 0 {
        return Ok(None);
    }
    info!(
        clear = census.clear,
        under_older_keys = pending - census.clear.min(pending),
        "sealing profile secrets in place under the newest data key, in the background while serving"
    );
    let store = store.clone();
    Ok(Some(tokio::spawn(async move {
        match reseal_all(&store).await {
            Ok(r) => {
                if census.clear > 0
                    && let Err(e) = store.scrub_free_space().await
                {
                    warn!(error = %e, "rebuilding the database after sealing failed: clear copies may remain in free pages");
                }
                info!(
                    sealed = r.rows,
                    left = r.left,
                    "profile secrets sealed in place"
                );
            }
            Err(e) => {
                warn!(error = %e, "sealing profile secrets in place failed; the next start resumes it")
            }
        }
    })))
}
