//! Periodic upkeep of an instance: expire orders whose time is up (the
//! operator is told through the callback outbox) and purge sessions that
//! serve no more (unauthenticated ones as soon as they expire).
//! Safe to run on every instance at once: each expiry is committed against
//! the version it read, and a second run finds nothing left to do.

use std::time::Duration;

use ferrosim_smdp::Smdp;
use ferrosim_smdp::store::Store;
use ferrosim_smdp::time::Timestamp;
use tokio::sync::watch;
use tracing::{info, warn};

/// Orders expired per round at most.
const EXPIRY_BATCH: u32 = 500;

pub(crate) async fn run<S: Store + Clone>(
    smdp: Smdp<S>,
    interval: Duration,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = tokio::time::sleep(interval) => {}
        }
        let now = Timestamp::now();
        match expire_orders(&smdp, now).await {
            Ok(0) => {}
            Ok(n) => info!(expired = n, "orders expired"),
            Err(e) => warn!(error = %e, "order expiry failed"),
        }
        match purge_sessions(&smdp, now, retention, &stop).await {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "expired sessions purged"),
            Err(e) => warn!(error = %e, "session purge failed"),
        }
    }
}

/// Sessions deleted per transaction.
pub const PURGE_CHUNK: u32 = 1000;

/// Deletes the sessions that serve no more (see
/// [`ferrosim_smdp::store::SessionStore::purge_sessions`]): unauthenticated
/// ones as soon as they expire, the others `retention` after they expired;
/// in chunks of [`PURGE_CHUNK`], each its own short transaction with a
/// pause between them, until none is left or the server stops. Returns how
/// many it deleted.
pub async fn purge_sessions<S: Store>(
    smdp: &Smdp<S>,
    now: Timestamp,
    retention: Duration,
    stop: &watch::Receiver<bool>,
) -> Result<u64, ferrosim_smdp::store::StoreError> {
    let ended_before = Timestamp(
        now.millis()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
    );
    let mut purged = 0;
    loop {
        let n = smdp
            .store()
            .purge_sessions(now, ended_before, PURGE_CHUNK)
            .await?;
        purged += n;
        if n < u64::from(PURGE_CHUNK) || *stop.borrow() {
            return Ok(purged);
        }
        // Let the requests waiting for the writer go first.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Expires every due order; returns how many ended.
pub async fn expire_orders<S: Store>(
    smdp: &Smdp<S>,
    now: Timestamp,
) -> Result<u64, ferrosim_smdp::store::StoreError> {
    smdp.expire_orders(now, EXPIRY_BATCH).await
}
