//! Periodic upkeep of an instance: expire orders whose time is up (the
//! operator is told through the callback outbox), purge sessions that
//! serve no more (unauthenticated ones as soon as they expire), and purge
//! the K, OPc, PIN/PUK and ADM keys of installed profiles once their
//! retention is over (the ICCID and IMSI stay).
//! Safe to run on every instance at once: each expiry is committed against
//! the version it read, and a second run finds nothing left to do.

use std::future::Future;
use std::time::Duration;

use ferrosim_smdp::Smdp;
use ferrosim_smdp::store::{Store, StoreError};
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::SqlStore;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Orders expired per round at most.
const EXPIRY_BATCH: u32 = 500;

/// A store that can purge the secrets of installed profiles (see
/// [`SqlStore::purge_installed_secrets`]).
pub trait InstalledSecretsPurge: Send + Sync + 'static {
    /// Purges the secrets of up to `limit` profiles installed before
    /// `installed_before`; returns how many it purged (0: none left).
    fn purge_installed_secrets(
        &self,
        installed_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl InstalledSecretsPurge for SqlStore {
    async fn purge_installed_secrets(
        &self,
        installed_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        SqlStore::purge_installed_secrets(self, installed_before, now, limit).await
    }
}

/// What housekeeping does besides expiring orders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upkeep {
    /// Pause between rounds.
    pub interval: Duration,
    /// How long ended sessions are kept.
    pub session_retention: Duration,
    /// How long installed profiles keep their secrets (`None`: for ever).
    pub secrets_retention: Option<Duration>,
}

pub(crate) async fn run<S: Store + InstalledSecretsPurge + Clone>(
    smdp: Smdp<S>,
    upkeep: Upkeep,
    mut stop: watch::Receiver<bool>,
) {
    let Upkeep {
        interval,
        session_retention: retention,
        secrets_retention,
    } = upkeep;
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
        if let Some(keep) = secrets_retention {
            match purge_installed_secrets(smdp.store(), now, keep, &stop).await {
                Ok(0) => debug!("no installed profile's secrets to purge"),
                Ok(n) => info!(
                    profiles = n,
                    "K, OPc, PIN/PUK and ADM keys of installed profiles purged"
                ),
                Err(e) => warn!(error = %e, "purging the secrets of installed profiles failed"),
            }
        }
    }
}

/// Profiles whose secrets are purged per transaction.
pub const SECRETS_PURGE_CHUNK: u32 = 500;

/// Purges the K, OPc, PIN/PUK and ADM keys of the profiles installed more
/// than `retention` before `now` (see [`InstalledSecretsPurge`]), in chunks
/// of [`SECRETS_PURGE_CHUNK`], each its own short transaction with a pause
/// between them, until none is left or the server stops. Profiles in any
/// other state keep theirs. Returns how many profiles it purged.
pub async fn purge_installed_secrets<S: InstalledSecretsPurge>(
    store: &S,
    now: Timestamp,
    retention: Duration,
    stop: &watch::Receiver<bool>,
) -> Result<u64, StoreError> {
    let installed_before = Timestamp(
        now.millis()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
    );
    let mut purged = 0;
    loop {
        let n = store
            .purge_installed_secrets(installed_before, now, SECRETS_PURGE_CHUNK)
            .await?;
        purged += n;
        if n == 0 || *stop.borrow() {
            return Ok(purged);
        }
        // Let the requests waiting for the writer go first.
        tokio::time::sleep(Duration::from_millis(10)).await;
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
