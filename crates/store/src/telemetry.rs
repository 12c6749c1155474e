//! [`SqlTelemetryStore`]: the activation telemetry of `ferrosim-telemetry`
//! in the instance's database (table `telemetry_events`, SQLite or
//! PostgreSQL).
//!
//! Events are append-only rows. Dimensions are stored as names and interned
//! through the store's [`Dictionary`] when read, so symbols of one process
//! never reach the database; the event kind is kept as its JSON record
//! ([`KindRecord`]), validated again when read: a row that does not decode is
//! reported as [`StoreError::Corrupt`], never guessed at.
//!
//! Writes go through the same path as the SM-DP+'s (on SQLite, the group
//! commit of the single writer): an append of many events is one
//! transaction of a few multi-row `INSERT`s, so telemetry written in batches
//! costs the SM-DP+ one slot of a group commit per batch. Retention deletes
//! in bounded chunks, so a large purge never holds the SQLite writer for
//! long.

use std::collections::BTreeSet;

use ferrosim_ids::Eid;
use ferrosim_telemetry::record::{EventRecord, KindRecord};
use ferrosim_telemetry::{
    CorrelationId, Dictionary, Event, EventQuery, StoreError, Sym, TelemetryStore, Timestamp,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::writes::{Val, bind_all};
use crate::{Backend, SqlStore};

/// Columns written per event, in the order of [`INSERT_HEAD`].
const COLUMNS: usize = 14;
const INSERT_HEAD: &str = "INSERT INTO telemetry_events (at, activation, device, source, carrier, \
     smdp, vendor, model, firmware, device_group, rollout, wave, kind, payload) VALUES ";
/// Rows per multi-row `INSERT`, largest first: a batch is cut into
/// statements of these sizes only, so a handful of statements are prepared
/// once and cached. On SQLite the parameters are anonymous (`?`): the SQLite
/// driver asks SQLite for each parameter's name, which walks a list as long
/// as the statement's named parameters, so numbered ones (`$N`) made a
/// statement's binding cost grow with the square of its rows (256-row
/// statements, 3,584 parameters, took 2.7 % of all CPU of `ferrosim bench`).
/// With `?` the lookup is constant and 64-row statements mean few round
/// trips to the driver's worker thread per batch.
const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];
/// Rows deleted per retention transaction.
const PURGE_CHUNK: i64 = 10_000;
/// Device sets up to this size are filtered by the database (`IN (...)`);
/// larger ones (a big rollout wave) after reading.
const MAX_DEVICES_IN_SQL: usize = 512;
const SELECT_COLUMNS: &str = "at, activation, device, source, carrier, smdp, vendor, model, \
     firmware, device_group, rollout, wave, payload";

/// The telemetry store on a [`SqlStore`]'s database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlTelemetryStore {
    store: SqlStore,
    dict: Dictionary,
}

impl SqlStore {
    /// The telemetry store on this database, naming dimensions with `dict`
    /// (shared with the producers of the events).
    pub fn telemetry(&self, dict: Dictionary) -> SqlTelemetryStore {
        SqlTelemetryStore {
            store: self.clone(),
            dict,
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
        S::Backend(m) | S::Conflict(m) => StoreError::Backend(m),
        // Telemetry rows are appended, never compared and set.
        S::Stale => StoreError::Backend(S::Stale.to_string()),
    }
}

/// The row values of one event.
fn row_values(e: &Event, dict: &Dictionary) -> Result<Vec<Val>, StoreError> {
    let r = EventRecord::from_event(e, dict);
    let payload =
        serde_json::to_string(&r.event).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(vec![
        r.at.into(),
        // Correlation ids are u64; the column is a signed 64-bit integer.
        Val::Int(r.activation.map(|a| a as i64)),
        r.device.into(),
        r.source.into(),
        r.carrier.into(),
        r.smdp.into(),
        r.vendor.into(),
        r.model.into(),
        r.firmware.into(),
        r.group.into(),
        r.rollout.into(),
        Val::Int(r.wave.map(i64::from)),
        e.kind.name().into(),
        payload.into(),
    ])
}

/// `INSERT ... VALUES (?, ..), (?, ..)` on SQLite, `INSERT ... VALUES ($1,
/// ..), ($15, ..)` on PostgreSQL, for `rows` events.
fn insert_sql(rows: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(INSERT_HEAD.len() + rows * COLUMNS * 6);
    sql.push_str(INSERT_HEAD);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * COLUMNS + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Inserts `chunks` (each one statement's rows) on `conn`, inside the
/// caller's transaction; on SQLite within a savepoint, so that a failure
/// leaves nothing of this append in a group commit shared with others.
async fn insert_all(
    conn: &mut AnyConnection,
    chunks: Vec<(String, Vec<Val>)>,
    backend: Backend,
) -> Result<(), ferrosim_smdp::store::StoreError> {
    use crate::rows::backend_err;
    let savepoint = backend == Backend::Sqlite && chunks.len() > 1;
    if savepoint {
        sqlx::query("SAVEPOINT telemetry")
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    for (sql, vals) in chunks {
        if let Err(e) = bind_all(sqlx::query(AssertSqlSafe(sql)), vals)
            .execute(&mut *conn)
            .await
        {
            if savepoint {
                let _ = sqlx::query("ROLLBACK TO telemetry; RELEASE telemetry;")
                    .execute(&mut *conn)
                    .await;
            }
            return Err(backend_err(e));
        }
    }
    if savepoint {
        sqlx::query("RELEASE telemetry")
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    Ok(())
}

/// The default database of the telemetry events of an instance whose
/// database is at `url`: on SQLite a file of their own beside it
/// (`sqlite:DIR/NAME.db` -> `sqlite:DIR/NAME-telemetry.db`, query string
/// kept), so that the events have a writer of their own and never wait in,
/// or lengthen, the SM-DP+'s group commits; `None` (the instance's own
/// database) on PostgreSQL, whose writers do not queue behind each other,
/// and for an in-memory SQLite database.
pub fn telemetry_database_url(url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("sqlite://") {
        ("sqlite://", rest)
    } else {
        ("sqlite:", url.strip_prefix("sqlite:")?)
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path.starts_with(':') || path.ends_with('/') {
        return None;
    }
    let (dir, file) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
    let (stem, ext) = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (file, None),
    };
    let mut out = String::from(scheme);
    if path.contains('/') {
        out.push_str(dir);
        out.push('/');
    }
    out.push_str(stem);
    out.push_str("-telemetry");
    if let Some(ext) = ext {
        out.push('.');
        out.push_str(ext);
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

impl SqlTelemetryStore {
    /// The SQL of a query and its bind values; device sets too large for the
    /// statement are returned to be applied after reading.
    fn select(&self, q: &EventQuery) -> (String, Vec<Val>, Option<BTreeSet<Eid>>) {
        let mut sql =
            format!("SELECT {SELECT_COLUMNS} FROM telemetry_events WHERE at >= $1 AND at < $2");
        let mut vals: Vec<Val> = vec![q.from.millis().into(), q.to.millis().into()];
        let mut cond = |sql: &mut String, column: &str, v: Val| {
            vals.push(v);
            sql.push_str(&format!(" AND {column} = ${}", vals.len()));
        };
        let f = &q.filter;
        if let Some(a) = f.activation {
            cond(&mut sql, "activation", Val::Int(Some(a.get() as i64)));
        }
        let name = |s: Sym| Val::Text(Some(self.dict.name(s).to_string()));
        for (column, sym) in [
            ("carrier", f.carrier),
            ("smdp", f.smdp),
            ("vendor", f.vendor),
            ("model", f.model),
            ("firmware", f.firmware),
            ("device_group", f.group),
            ("rollout", f.rollout),
        ] {
            if let Some(s) = sym {
                cond(&mut sql, column, name(s));
            }
        }
        if let Some(w) = f.wave {
            cond(&mut sql, "wave", Val::Int(Some(i64::from(w))));
        }
        let mut later = None;
        match &f.devices {
            Some(set) if set.is_empty() => sql.push_str(" AND 1 = 0"),
            Some(set) if set.len() <= MAX_DEVICES_IN_SQL => {
                sql.push_str(" AND device IN (");
                for (i, eid) in set.iter().enumerate() {
                    vals.push(eid.to_string().into());
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", vals.len()));
                }
                sql.push(')');
            }
            Some(set) => later = Some(set.clone()),
            None => {}
        }
        sql.push_str(" ORDER BY at, id");
        if let (Some(limit), None) = (q.limit, &later) {
            vals.push(Val::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX))));
            sql.push_str(&format!(" LIMIT ${}", vals.len()));
        }
        (sql, vals, later)
    }

    fn decode(&self, row: &AnyRow) -> Result<Event, StoreError> {
        fn get<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
        where
            T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
        {
            row.try_get(name)
                .map_err(|e| StoreError::Corrupt(format!("telemetry_events.{name}: {e}")))
        }
        let wave: Option<i64> = get(row, "wave")?;
        let wave = wave
            .map(|w| u16::try_from(w).map_err(|_| StoreError::Corrupt(format!("wave {w}"))))
            .transpose()?;
        let payload: String = get(row, "payload")?;
        let event: KindRecord = serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("telemetry_events.payload: {e}")))?;
        let activation: Option<i64> = get(row, "activation")?;
        let record = EventRecord {
            at: get(row, "at")?,
            activation: activation.map(|a| a as u64),
            device: get(row, "device")?,
            source: get(row, "source")?,
            carrier: get(row, "carrier")?,
            smdp: get(row, "smdp")?,
            vendor: get(row, "vendor")?,
            model: get(row, "model")?,
            firmware: get(row, "firmware")?,
            group: get(row, "device_group")?,
            rollout: get(row, "rollout")?,
            wave,
            event,
        };
        record
            .to_event(&self.dict)
            .map_err(|e| StoreError::Corrupt(format!("telemetry event: {e}")))
    }
}

impl TelemetryStore for SqlTelemetryStore {
    fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let backend = self.store.backend();
        let mut chunks = Vec::with_capacity(events.len().div_ceil(ROWS_PER_INSERT[0]) + 9);
        let mut rest = events;
        for rows in ROWS_PER_INSERT {
            while rest.len() >= rows {
                let (chunk, tail) = rest.split_at(rows);
                let mut vals = Vec::with_capacity(rows * COLUMNS);
                for e in chunk {
                    vals.extend(row_values(e, &self.dict)?);
                }
                chunks.push((insert_sql(rows, backend), vals));
                rest = tail;
            }
        }
        self.store
            .write(move |conn| Box::pin(async move { insert_all(conn, chunks, backend).await }))
            .await
            .map_err(from_smdp)
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        query.validate()?;
        let (sql, vals, later) = self.select(query);
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), vals)
            .fetch_all(self.store.reader())
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        let limit = query.limit.unwrap_or(usize::MAX);
        for row in &rows {
            if out.len() >= limit {
                break;
            }
            let event = self.decode(row)?;
            if later.as_ref().is_none_or(|set| set.contains(&event.device)) {
                out.push(event);
            }
        }
        Ok(out)
    }

    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let at = cutoff.millis();
            let deleted = self
                .store
                .write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "DELETE FROM telemetry_events WHERE id IN (
                               SELECT id FROM telemetry_events WHERE at < $1 ORDER BY id LIMIT $2)",
                        )
                        .bind(at)
                        .bind(PURGE_CHUNK)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(crate::rows::backend_err)
                    })
                })
                .await
                .map_err(from_smdp)?;
            total += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn timeline(&self, activation: CorrelationId) -> Result<Vec<Event>, StoreError> {
        let mut q = EventQuery::all();
        q.filter.activation = Some(activation);
        self.query(&q).await
    }
}

#[cfg(test)]
mod tests {
    use super::{insert_sql, telemetry_database_url};
    use crate::Backend;

    #[test]
    fn telemetry_database_beside_a_sqlite_file() {
        let t = |u| telemetry_database_url(u);
        assert_eq!(
            t("sqlite:d/f.db").as_deref(),
            Some("sqlite:d/f-telemetry.db")
        );
        assert_eq!(
            t("sqlite:///abs/f.db?mode=rwc").as_deref(),
            Some("sqlite:///abs/f-telemetry.db?mode=rwc")
        );
        assert_eq!(t("sqlite:f").as_deref(), Some("sqlite:f-telemetry"));
        assert_eq!(
            t("sqlite:/a.b/f").as_deref(),
            Some("sqlite:/a.b/f-telemetry")
        );
        assert_eq!(
            t("sqlite:.hidden").as_deref(),
            Some("sqlite:.hidden-telemetry")
        );
        assert_eq!(t("sqlite::memory:"), None);
        assert_eq!(t("sqlite:"), None);
        assert_eq!(t("sqlite:dir/"), None);
        assert_eq!(t("postgres://u:p@h/db"), None);
        assert_eq!(t("garbage"), None);
    }

    #[test]
    fn insert_placeholders_are_numbered_per_row() {
        let sql = insert_sql(2, Backend::Postgres);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"));
        assert!(
            sql.ends_with("($15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)")
        );
        let sql = insert_sql(2, Backend::Sqlite);
        let row = format!("({})", vec!["?"; 14].join(", "));
        assert!(sql.ends_with(&format!("VALUES {row}, {row}")), "{sql}");
        assert!(!sql.contains('$'));
    }
}
