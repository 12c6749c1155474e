//! What the database says happened, for tests that must prove nothing was
//! lost or done twice: the orders and their states, how many download
//! sessions were handed a Bound Profile Package per profile, the callback
//! outbox, and which outbox rows an operator endpoint received.
//!
//! Read-only SQL over the store's pool, written for both backends.

use std::collections::BTreeMap;

use ferrosim_store::SqlStore;
use serde_json::Value;
use sqlx::Row;

/// The `functionCallIdentifier` prefix of the SM-DP+'s ES2+ callbacks; the
/// rest is the outbox row id.
pub const CALLBACK_CALL_PREFIX: &str = "ferrosim-callback-";

/// One profile that carries an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// ICCID.
    pub iccid: String,
    /// State name (`released`, `downloaded`, `installed`, ...).
    pub state: String,
    /// The EID the order is linked (or, once downloaded, bound) to.
    pub eid: Option<String>,
    /// Download sessions started for the order.
    pub download_attempts: i64,
}

/// Every profile with an order, by ICCID.
pub async fn orders(store: &SqlStore) -> anyhow::Result<BTreeMap<String, OrderRow>> {
    let rows = sqlx::query(
        "SELECT iccid, state, eid, download_attempts FROM profiles WHERE has_order = 1",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let row = OrderRow {
            iccid: r.try_get("iccid")?,
            state: r.try_get("state")?,
            eid: r.try_get("eid")?,
            download_attempts: r.try_get("download_attempts")?,
        };
        out.insert(row.iccid.clone(), row);
    }
    Ok(out)
}

/// Per ICCID, how many download sessions were handed a Bound Profile
/// Package (`getBoundProfilePackage` committed: the session holds the
/// eUICC's one-time key).
pub async fn issued_packages(store: &SqlStore) -> anyhow::Result<BTreeMap<String, u64>> {
    let rows = sqlx::query(
        "SELECT iccid, COUNT(*) AS n FROM sessions
         WHERE iccid IS NOT NULL AND euicc_otpk IS NOT NULL GROUP BY iccid",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let n: i64 = r.try_get("n")?;
        out.insert(r.try_get("iccid")?, u64::try_from(n)?);
    }
    Ok(out)
}

/// One row of the callback outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Outbox id (the `functionCallIdentifier` suffix).
    pub id: i64,
    /// ICCID of the event.
    pub iccid: String,
    /// `notificationPointId`.
    pub point: i64,
    /// Whether the operator acknowledged it.
    pub delivered: bool,
    /// Delivery attempts (leases) so far.
    pub attempts: i64,
}

/// The whole callback outbox, by id.
pub async fn outbox(store: &SqlStore) -> anyhow::Result<BTreeMap<i64, OutboxRow>> {
    let rows = sqlx::query(
        "SELECT id, iccid, point, attempts,
                CAST(CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS delivered
         FROM callbacks",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let row = OutboxRow {
            id: r.try_get("id")?,
            iccid: r.try_get("iccid")?,
            point: r.try_get("point")?,
            delivered: r.try_get::<i64, _>("delivered")? != 0,
            attempts: r.try_get("attempts")?,
        };
        out.insert(row.id, row);
    }
    Ok(out)
}

/// How many times each outbox id reached the operator, from the callback
/// bodies an endpoint recorded (`header.functionCallIdentifier`). Bodies
/// that are not SM-DP+ callbacks are counted under `None`.
pub fn deliveries_by_outbox_id(received: &[Value]) -> BTreeMap<Option<i64>, usize> {
    let mut out = BTreeMap::new();
    for body in received {
        let id = body["header"]["functionCallIdentifier"]
            .as_str()
            .and_then(|s| s.strip_prefix(CALLBACK_CALL_PREFIX))
            .and_then(|s| s.parse::<i64>().ok());
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deliveries_are_counted_by_outbox_id() {
        let cb = |id: &str| json!({"header": {"functionCallIdentifier": id}});
        let counts = deliveries_by_outbox_id(&[
            cb("ferrosim-callback-7"),
            cb("ferrosim-callback-7"),
            cb("ferrosim-callback-8"),
            cb("other-1"),
            json!("not json"),
        ]);
        assert_eq!(counts.get(&Some(7)), Some(&2));
        assert_eq!(counts.get(&Some(8)), Some(&1));
        assert_eq!(counts.get(&None), Some(&2));
    }
}
