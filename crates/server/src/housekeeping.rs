//! Periodic upkeep of an instance: expire orders whose time is up (the
//! operator is told through the callback outbox) and purge old sessions.
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
        let before = Timestamp(
            now.millis()
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
        );
        match smdp.store().purge_sessions(before).await {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "old sessions purged"),
            Err(e) => warn!(error = %e, "session purge failed"),
        }
    }
}

/// Expires every due order; returns how many ended.
pub async fn expire_orders<S: Store>(
    smdp: &Smdp<S>,
    now: Timestamp,
) -> Result<u64, ferrosim_smdp::store::StoreError> {
    smdp.expire_orders(now, EXPIRY_BATCH).await
}
