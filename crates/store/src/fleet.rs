//! [`SqlFleetStore`]: `ferrosim-fleet`'s [`FleetStore`] in the instance's
//! database (tables `fleet_*`, SQLite or PostgreSQL).
//!
//! Records are stored as their JSON form and validated again when read: a
//! row that does not decode, or whose key disagrees with its record, is
//! reported as [`StoreError::Corrupt`], never guessed at.
//!
//! A [`FleetStore::commit`] is one write transaction (on SQLite, one job of
//! the group commit) inside a savepoint. Every update is a compare-and-set
//! (`UPDATE .. WHERE version = expected`); inserts use `ON CONFLICT DO
//! NOTHING` and count the rows written. If any part is refused (stale or
//! conflicting) or fails, the savepoint is rolled back and nothing of the
//! commit is stored. On PostgreSQL, two instances updating the same record
//! at once serialise on its row lock and the second sees the new version:
//! its commit is [`StoreError::Stale`], so two instances never both decide
//! for one device.

use std::collections::BTreeSet;

use ferrosim_fleet::action::Action;
use ferrosim_fleet::decision::Decision;
use ferrosim_fleet::device::DeviceState;
use ferrosim_fleet::rollout::Rollout;
use ferrosim_fleet::store::{
    DecisionQuery, EngineState, FleetChanges, FleetStore, StoreError, StoreResult, Version,
    Versioned, WebhookCursor, Write,
};
use ferrosim_ids::Eid;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::SqlStore;
use crate::writes::{Val, bind_all};

/// The fleet store on a [`SqlStore`]'s database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlFleetStore {
    store: SqlStore,
}

impl SqlStore {
    /// The fleet store on this database.
    pub fn fleet(&self) -> SqlFleetStore {
        SqlFleetStore {
            store: self.clone(),
        }
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn from_smdp(e: ferrosim_smdp::store::StoreError) -> StoreError {
    use ferrosim_smdp::store::StoreError as S;
    match e {
        S::Corrupt(m) => StoreError::Corrupt(m),
        S::Conflict(m) => StoreError::Conflict(m),
        S::Backend(m) => StoreError::Backend(m),
        S::Stale => StoreError::Stale,
    }
}

fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A u64 id as the signed 64-bit column holds it (ids above `i64::MAX`
/// would not sort; the engine's counters never get there).
fn id64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} is out of range")))
}

fn col<'r, T>(row: &'r AnyRow, table: &str, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("{table}.{name}: {e}")))
}

fn version_of(row: &AnyRow, table: &str) -> StoreResult<Version> {
    let v: i64 = col(row, table, "version")?;
    u64::try_from(v)
        .map(Version)
        .map_err(|_| StoreError::Corrupt(format!("{table}.version {v}")))
}

fn version64(v: Version) -> StoreResult<i64> {
    id64(v.0, "version")
}

/// One statement of a commit and what its row count must be.
#[derive(Debug)]
struct Step {
    sql: &'static str,
    vals: Vec<Val>,
    /// Refusal when it touches no row (`None`: any count is fine).
    if_none: Option<Refusal>,
}

/// Why a commit was refused (nothing written).
#[derive(Debug, Clone)]
enum Refusal {
    Stale,
    Conflict(String),
}

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Stale => StoreError::Stale,
            Refusal::Conflict(m) => StoreError::Conflict(m),
        }
    }
}

const INSERT_DEVICE: &str = "INSERT INTO fleet_devices (eid, version, payload) VALUES ($1, 0, $2) \
     ON CONFLICT (eid) DO NOTHING";
const UPDATE_DEVICE: &str =
    "UPDATE fleet_devices SET version = $1, payload = $2 WHERE eid = $3 AND version = $4";
const INSERT_ROLLOUT: &str = "INSERT INTO fleet_rollouts (id, version, payload) VALUES ($1, 0, $2) \
     ON CONFLICT (id) DO NOTHING";
const UPDATE_ROLLOUT: &str =
    "UPDATE fleet_rollouts SET version = $1, payload = $2 WHERE id = $3 AND version = $4";
const INSERT_ENGINE: &str = "INSERT INTO fleet_engine (id, version, payload) VALUES (1, 0, $1) \
     ON CONFLICT (id) DO NOTHING";
const UPDATE_ENGINE: &str =
    "UPDATE fleet_engine SET version = $1, payload = $2 WHERE id = 1 AND version = $3";
const INSERT_ACTION: &str = "INSERT INTO fleet_in_flight (id, device, payload) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO NOTHING";
const DELETE_ACTION: &str = "DELETE FROM fleet_in_flight WHERE id = $1";
const INSERT_DECISION: &str = "INSERT INTO fleet_decisions (seq, at, device, rollout, payload) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING";

/// The statements of a commit, in order; refused at once when the changes
/// contradict themselves (a record twice, decisions out of order).
fn plan(changes: &FleetChanges) -> StoreResult<(Vec<Step>, Option<u64>)> {
    let mut steps = Vec::new();
    let mut seen = BTreeSet::new();
    for w in &changes.devices {
        let (d, expected) = split(w);
        if !seen.insert(d.eid) {
            return Err(StoreError::Conflict(format!(
                "device {} twice in one commit",
                d.eid
            )));
        }
        let payload = to_json(d)?;
        steps.push(match expected {
            None => Step {
                sql: INSERT_DEVICE,
                vals: vec![d.eid.to_string().into(), payload.into()],
                if_none: Some(Refusal::Conflict(format!("device {} exists", d.eid))),
            },
            Some(e) => Step {
                sql: UPDATE_DEVICE,
                vals: vec![
                    Val::Int(Some(version64(e.next())?)),
                    payload.into(),
                    d.eid.to_string().into(),
                    Val::Int(Some(version64(e)?)),
                ],
                if_none: Some(Refusal::Stale),
            },
        });
    }
    let mut seen = BTreeSet::new();
    for w in &changes.rollouts {
        let (r, expected) = split(w);
        if !seen.insert(r.id) {
            return Err(StoreError::Conflict(format!(
                "rollout {} twice in one commit",
                r.id
            )));
        }
        let payload = to_json(r)?;
        let id = Val::Int(Some(i64::from(r.id)));
        steps.push(match expected {
            None => Step {
                sql: INSERT_ROLLOUT,
                vals: vec![id, payload.into()],
                if_none: Some(Refusal::Conflict(format!("rollout {} exists", r.id))),
            },
            Some(e) => Step {
                sql: UPDATE_ROLLOUT,
                vals: vec![
                    Val::Int(Some(version64(e.next())?)),
                    payload.into(),
                    id,
                    Val::Int(Some(version64(e)?)),
                ],
                if_none: Some(Refusal::Stale),
            },
        });
    }
    if let Some((expected, engine)) = &changes.engine {
        let payload = to_json(engine)?;
        steps.push(match expected {
            None => Step {
                sql: INSERT_ENGINE,
                vals: vec![payload.into()],
                if_none: Some(Refusal::Conflict("engine state exists".into())),
            },
            Some(e) => Step {
                sql: UPDATE_ENGINE,
                vals: vec![
                    Val::Int(Some(version64(e.next())?)),
                    payload.into(),
                    Val::Int(Some(version64(*e)?)),
                ],
                if_none: Some(Refusal::Stale),
            },
        });
    }
    // Issued before answered: an id issued while still in flight conflicts
    // even if the same commit answers it (as in the in-memory store).
    for a in &changes.issued {
        steps.push(Step {
            sql: INSERT_ACTION,
            vals: vec![
                Val::Int(Some(id64(a.id.0, "action id")?)),
                a.device.to_string().into(),
                to_json(a)?.into(),
            ],
            if_none: Some(Refusal::Conflict(format!(
                "action {} already in flight",
                a.id
            ))),
        });
    }
    for id in &changes.answered {
        steps.push(Step {
            sql: DELETE_ACTION,
            vals: vec![Val::Int(Some(id64(id.0, "action id")?))],
            if_none: None,
        });
    }
    let mut last = None::<u64>;
    for d in &changes.decisions {
        if last.is_some_and(|l| d.seq <= l) {
            return Err(StoreError::Conflict(format!(
                "decision {} is not new",
                d.seq
            )));
        }
        last = Some(d.seq);
        steps.push(Step {
            sql: INSERT_DECISION,
            vals: vec![
                Val::Int(Some(id64(d.seq, "decision number")?)),
                Val::Int(Some(d.at.0)),
                Val::Text(d.device.map(|e| e.to_string())),
                Val::Int(d.rollout.map(i64::from)),
                to_json(d)?.into(),
            ],
            if_none: Some(Refusal::Conflict(format!("decision {} is not new", d.seq))),
        });
    }
    let first_decision = changes.decisions.first().map(|d| d.seq);
    Ok((steps, first_decision))
}

fn split<T>(w: &Write<T>) -> (&T, Option<Version>) {
    match w {
        Write::Insert(r) => (r, None),
        Write::Update { expected, record } => (record, Some(*expected)),
    }
}

/// A failure inside the transaction: refused, or the database failed.
enum Failure {
    Refused(Refusal),
    Db(ferrosim_smdp::store::StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(crate::rows::backend_err(e))
    }
}

/// Runs the steps on `conn` (inside the caller's transaction and a
/// savepoint of its own).
async fn apply(
    conn: &mut AnyConnection,
    steps: Vec<Step>,
    first_decision: Option<u64>,
) -> Result<(), Failure> {
    if let Some(first) = first_decision {
        // Decision numbers only grow: the first new one must be above every
        // stored one.
        let row = sqlx::query("SELECT MAX(seq) AS last FROM fleet_decisions")
            .fetch_one(&mut *conn)
            .await?;
        let last: Option<i64> = row
            .try_get("last")
            .map_err(|e| Failure::Db(ferrosim_smdp::store::StoreError::Corrupt(e.to_string())))?;
        if last.is_some_and(|l| i64::try_from(first).is_ok_and(|f| f <= l)) {
            return Err(Failure::Refused(Refusal::Conflict(format!(
                "decision {first} is not new"
            ))));
        }
    }
    for step in steps {
        let done = bind_all(sqlx::query(step.sql), step.vals)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0
            && let Some(refusal) = step.if_none
        {
            return Err(Failure::Refused(refusal));
        }
    }
    Ok(())
}

impl SqlFleetStore {
    async fn fetch_all(&self, sql: String, vals: Vec<Val>) -> StoreResult<Vec<AnyRow>> {
        bind_all(sqlx::query(AssertSqlSafe(sql)), vals)
            .fetch_all(self.store.reader())
            .await
            .map_err(backend)
    }
}

fn device_row(row: &AnyRow) -> StoreResult<Versioned<DeviceState>> {
    const T: &str = "fleet_devices";
    let key: String = col(row, T, "eid")?;
    let eid: Eid = key
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{T}.eid {key:?}: {e}")))?;
    let payload: String = col(row, T, "payload")?;
    let record: DeviceState = from_json(&payload, "fleet_devices.payload")?;
    if record.eid != eid {
        return Err(StoreError::Corrupt(format!(
            "fleet_devices row {eid} holds device {}",
            record.eid
        )));
    }
    Ok(Versioned {
        record,
        version: version_of(row, T)?,
    })
}

fn rollout_row(row: &AnyRow) -> StoreResult<Versioned<Rollout>> {
    const T: &str = "fleet_rollouts";
    let id: i64 = col(row, T, "id")?;
    let payload: String = col(row, T, "payload")?;
    let record: Rollout = from_json(&payload, "fleet_rollouts.payload")?;
    if i64::from(record.id) != id {
        return Err(StoreError::Corrupt(format!(
            "fleet_rollouts row {id} holds rollout {}",
            record.id
        )));
    }
    Ok(Versioned {
        record,
        version: version_of(row, T)?,
    })
}

fn action_row(row: &AnyRow) -> StoreResult<Action> {
    const T: &str = "fleet_in_flight";
    let id: i64 = col(row, T, "id")?;
    let payload: String = col(row, T, "payload")?;
    let a: Action = from_json(&payload, "fleet_in_flight.payload")?;
    if i64::try_from(a.id.0).ok() != Some(id) {
        return Err(StoreError::Corrupt(format!(
            "fleet_in_flight row {id} holds action {}",
            a.id
        )));
    }
    Ok(a)
}

fn decision_row(row: &AnyRow) -> StoreResult<Decision> {
    const T: &str = "fleet_decisions";
    let seq: i64 = col(row, T, "seq")?;
    let payload: String = col(row, T, "payload")?;
    let d: Decision = from_json(&payload, "fleet_decisions.payload")?;
    if i64::try_from(d.seq).ok() != Some(seq) {
        return Err(StoreError::Corrupt(format!(
            "fleet_decisions row {seq} holds decision {}",
            d.seq
        )));
    }
    Ok(d)
}

const WEBHOOK_COLUMNS: &str =
    "endpoint, delivered_seq, failures, next_attempt_at, holder, lease_until, last_error";

fn webhook_row(row: &AnyRow) -> StoreResult<WebhookCursor> {
    const T: &str = "fleet_webhook_cursors";
    let seq: i64 = col(row, T, "delivered_seq")?;
    let failures: i64 = col(row, T, "failures")?;
    Ok(WebhookCursor {
        endpoint: col(row, T, "endpoint")?,
        delivered_seq: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("{T}.delivered_seq {seq}")))?,
        failures: u32::try_from(failures)
            .map_err(|_| StoreError::Corrupt(format!("{T}.failures {failures}")))?,
        next_attempt_ms: col(row, T, "next_attempt_at")?,
        holder: col(row, T, "holder")?,
        lease_until_ms: col(row, T, "lease_until")?,
        last_error: col(row, T, "last_error")?,
    })
}

impl SqlFleetStore {
    /// Runs one statement on the writer pool (each statement is atomic on
    /// its own) and returns the rows it reports.
    async fn write_one(&self, sql: String, vals: Vec<Val>) -> StoreResult<Vec<AnyRow>> {
        bind_all(sqlx::query(AssertSqlSafe(sql)), vals)
            .fetch_all(self.store.pool())
            .await
            .map_err(backend)
    }
}

impl FleetStore for SqlFleetStore {
    async fn device(&self, eid: &Eid) -> StoreResult<Option<Versioned<DeviceState>>> {
        let rows = self
            .fetch_all(
                "SELECT eid, version, payload FROM fleet_devices WHERE eid = $1".into(),
                vec![eid.to_string().into()],
            )
            .await?;
        rows.first().map(device_row).transpose()
    }

    async fn devices(
        &self,
        after: Option<Eid>,
        limit: u32,
    ) -> StoreResult<Vec<Versioned<DeviceState>>> {
        let (sql, mut vals) = match after {
            Some(a) => (
                "SELECT eid, version, payload FROM fleet_devices WHERE eid > $1 ORDER BY eid LIMIT $2",
                vec![Val::from(a.to_string())],
            ),
            None => (
                "SELECT eid, version, payload FROM fleet_devices ORDER BY eid LIMIT $1",
                vec![],
            ),
        };
        vals.push(Val::Int(Some(i64::from(limit))));
        let rows = self.fetch_all(sql.into(), vals).await?;
        rows.iter().map(device_row).collect()
    }

    async fn rollout(&self, id: u32) -> StoreResult<Option<Versioned<Rollout>>> {
        let rows = self
            .fetch_all(
                "SELECT id, version, payload FROM fleet_rollouts WHERE id = $1".into(),
                vec![Val::Int(Some(i64::from(id)))],
            )
            .await?;
        rows.first().map(rollout_row).transpose()
    }

    async fn rollouts(&self) -> StoreResult<Vec<Versioned<Rollout>>> {
        let rows = self
            .fetch_all(
                "SELECT id, version, payload FROM fleet_rollouts ORDER BY id".into(),
                vec![],
            )
            .await?;
        rows.iter().map(rollout_row).collect()
    }

    async fn engine(&self) -> StoreResult<Option<Versioned<EngineState>>> {
        let rows = self
            .fetch_all(
                "SELECT version, payload FROM fleet_engine WHERE id = 1".into(),
                vec![],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let payload: String = col(row, "fleet_engine", "payload")?;
        Ok(Some(Versioned {
            record: from_json(&payload, "fleet_engine.payload")?,
            version: version_of(row, "fleet_engine")?,
        }))
    }

    async fn in_flight(&self) -> StoreResult<Vec<Action>> {
        let rows = self
            .fetch_all(
                "SELECT id, payload FROM fleet_in_flight ORDER BY id".into(),
                vec![],
            )
            .await?;
        rows.iter().map(action_row).collect()
    }

    async fn decisions(&self, q: &DecisionQuery) -> StoreResult<Vec<Decision>> {
        let after = i64::try_from(q.after_seq).unwrap_or(i64::MAX);
        let mut sql = String::from("SELECT seq, payload FROM fleet_decisions WHERE seq > $1");
        let mut vals = vec![Val::Int(Some(after))];
        if let Some(eid) = q.device {
            vals.push(eid.to_string().into());
            sql.push_str(&format!(" AND device = ${}", vals.len()));
        }
        if let Some(r) = q.rollout {
            vals.push(Val::Int(Some(i64::from(r))));
            sql.push_str(&format!(" AND rollout = ${}", vals.len()));
        }
        sql.push_str(" ORDER BY seq");
        if q.limit > 0 {
            vals.push(Val::Int(Some(i64::from(q.limit))));
            sql.push_str(&format!(" LIMIT ${}", vals.len()));
        }
        let rows = self.fetch_all(sql, vals).await?;
        rows.iter().map(decision_row).collect()
    }

    async fn commit(&self, changes: FleetChanges) -> StoreResult<()> {
        let (steps, first_decision) = plan(&changes)?;
        if steps.is_empty() {
            return Ok(());
        }
        let outcome = self
            .store
            .write(move |conn| {
                Box::pin(async move {
                    use crate::rows::backend_err;
                    sqlx::query("SAVEPOINT fleet_commit")
                        .execute(&mut *conn)
                        .await
                        .map_err(backend_err)?;
                    match apply(conn, steps, first_decision).await {
                        Ok(()) => {
                            sqlx::query("RELEASE SAVEPOINT fleet_commit")
                                .execute(&mut *conn)
                                .await
                                .map_err(backend_err)?;
                            Ok(Ok(()))
                        }
                        Err(failure) => {
                            let undo = async {
                                sqlx::query("ROLLBACK TO SAVEPOINT fleet_commit")
                                    .execute(&mut *conn)
                                    .await?;
                                sqlx::query("RELEASE SAVEPOINT fleet_commit")
                                    .execute(&mut *conn)
                                    .await
                            };
                            // If the undo fails the transaction is unusable:
                            // fail the job so it is rolled back as a whole.
                            undo.await.map_err(backend_err)?;
                            match failure {
                                Failure::Refused(r) => Ok(Err(r)),
                                Failure::Db(e) => Err(e),
                            }
                        }
                    }
                })
            })
            .await
            .map_err(from_smdp)?;
        outcome.map_err(StoreError::from)
    }

    async fn claim_webhook(
        &self,
        endpoint: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<WebhookCursor>> {
        self.write_one(
            "INSERT INTO fleet_webhook_cursors (endpoint, delivered_seq, failures, \
             next_attempt_at, holder, lease_until, last_error) VALUES ($1, 0, 0, 0, NULL, 0, NULL) \
             ON CONFLICT (endpoint) DO NOTHING"
                .into(),
            vec![endpoint.into()],
        )
        .await?;
        // One UPDATE: on PostgreSQL a concurrent claim waits for the row
        // lock and then sees the lease taken; SQLite runs one writer.
        let rows = self
            .write_one(
                format!(
                    "UPDATE fleet_webhook_cursors SET holder = $2, lease_until = $3 \
                     WHERE endpoint = $1 AND next_attempt_at <= $4 \
                     AND (holder IS NULL OR holder = $2 OR lease_until < $4) \
                     RETURNING {WEBHOOK_COLUMNS}"
                ),
                vec![
                    endpoint.into(),
                    holder.into(),
                    Val::Int(Some(now_ms.saturating_add(lease_ms))),
                    Val::Int(Some(now_ms)),
                ],
            )
            .await?;
        rows.first().map(webhook_row).transpose()
    }

    async fn webhook_delivered(
        &self,
        endpoint: &str,
        holder: &str,
        seq: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let rows = self
            .write_one(
                "UPDATE fleet_webhook_cursors SET delivered_seq = $3, failures = 0, \
                 next_attempt_at = 0, last_error = NULL, lease_until = $4 \
                 WHERE endpoint = $1 AND holder = $2 AND delivered_seq < $3 RETURNING endpoint"
                    .into(),
                vec![
                    endpoint.into(),
                    holder.into(),
                    Val::Int(Some(id64(seq, "decision number")?)),
                    Val::Int(Some(now_ms.saturating_add(lease_ms))),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn webhook_failed(
        &self,
        endpoint: &str,
        holder: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> StoreResult<bool> {
        let rows = self
            .write_one(
                "UPDATE fleet_webhook_cursors SET failures = failures + 1, next_attempt_at = $3, \
                 last_error = $4, holder = NULL, lease_until = 0 \
                 WHERE endpoint = $1 AND holder = $2 RETURNING endpoint"
                    .into(),
                vec![
                    endpoint.into(),
                    holder.into(),
                    Val::Int(Some(next_attempt_ms)),
                    error.into(),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn release_webhook(&self, endpoint: &str, holder: &str) -> StoreResult<()> {
        self.write_one(
            "UPDATE fleet_webhook_cursors SET holder = NULL, lease_until = 0 \
             WHERE endpoint = $1 AND holder = $2 RETURNING endpoint"
                .into(),
            vec![endpoint.into(), holder.into()],
        )
        .await?;
        Ok(())
    }

    async fn webhook_cursors(&self) -> StoreResult<Vec<WebhookCursor>> {
        let rows = self
            .fetch_all(
                format!("SELECT {WEBHOOK_COLUMNS} FROM fleet_webhook_cursors ORDER BY endpoint"),
                vec![],
            )
            .await?;
        rows.iter().map(webhook_row).collect()
    }
}
