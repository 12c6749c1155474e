//! `ferrosim_eim::EimStore` for [`SqlStore`]: the eIM's devices, results and
//! notifications on SQLite and PostgreSQL (tables `eim_*`).
//!
//! A device is one row holding its whole record (association, counter,
//! queue) with a `version`: a commit rewrites it with `UPDATE … WHERE
//! version = expected` and writes nothing when another writer got there
//! first ([`StoreError::Stale`]). PostgreSQL serialises the two updates on
//! the row lock and re-checks the condition for the second, so two eIM
//! instances on one database can never both issue the next counter value.
//! In the same transaction: the index of the open items' eIM transaction
//! ids, the results (unique per device and item: a second one is
//! [`StoreError::Conflict`] and nothing of the commit stays) and the
//! notifications (the first copy kept).

mod doc;

use ferrosim_eim::store::{DeviceWrite, StoreResult};
use ferrosim_eim::{
    Counter, DeviceRecord, EimChanges, EimStore, EimTransactionId, NotificationRecord,
    RelaySession, ResultRecord, StoreError, Timestamp, Version, Versioned,
};
use ferrosim_ids::{Eid, TransactionId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::writes::Writes;
use doc::{DeviceDoc, OutcomeDoc};

/// A store error of the SM-DP+ rooms as the eIM's.
fn eim_err(e: ferrosim_smdp::store::StoreError) -> StoreError {
    use ferrosim_smdp::store::StoreError as S;
    match e {
        S::Conflict(m) => StoreError::Conflict(m),
        S::Corrupt(m) => StoreError::Corrupt(m),
        S::Backend(m) => StoreError::Backend(m),
        S::Stale => StoreError::Stale,
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    eim_err(crate::rows::backend_err(e))
}

fn get<'r, T>(row: &'r AnyRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

fn eid_of(text: &str) -> StoreResult<Eid> {
    text.parse::<Eid>()
        .map_err(|_| StoreError::Corrupt(format!("invalid EID `{text}`")))
}

fn int(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} does not fit a column")))
}

const RESULT_COLUMNS: &str =
    "eid, item_id, kind, counter, seq_number, trust, outcome, der, read_as, received_at";

fn result_row(row: &AnyRow) -> StoreResult<ResultRecord> {
    let eid: String = get(row, "eid")?;
    let item_id: i64 = get(row, "item_id")?;
    let counter: Option<i64> = get(row, "counter")?;
    let trust: Option<String> = get(row, "trust")?;
    let outcome: String = get(row, "outcome")?;
    let outcome: OutcomeDoc = serde_json::from_str(&outcome)
        .map_err(|e| StoreError::Corrupt(format!("eIM result outcome: {e}")))?;
    let read_as: String = get(row, "read_as")?;
    let kind: String = get(row, "kind")?;
    Ok(ResultRecord {
        eid: eid_of(&eid)?,
        item_id: u64::try_from(item_id)
            .map_err(|_| StoreError::Corrupt(format!("item id {item_id}")))?,
        kind: doc::kind_of(&kind)?,
        counter: counter
            .map(|c| {
                u64::try_from(c)
                    .ok()
                    .and_then(|c| Counter::new(c).ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("counter {c}")))
            })
            .transpose()?,
        seq_number: get(row, "seq_number")?,
        trust: trust.as_deref().map(doc::trust_of).transpose()?,
        outcome: outcome.into_outcome()?,
        der: get(row, "der")?,
        read_as: doc::version_of(&read_as)?,
        received_at: Timestamp(get(row, "received_at")?),
    })
}

impl EimStore for SqlStore {
    async fn device(&self, eid: &Eid) -> StoreResult<Option<Versioned<DeviceRecord>>> {
        let row = sqlx::query("SELECT version, record FROM eim_devices WHERE eid = $1")
            .bind(eid.digits())
            .fetch_optional(self.reader())
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version: i64 = get(&row, "version")?;
        let record: String = get(&row, "record")?;
        let doc: DeviceDoc = serde_json::from_str(&record)
            .map_err(|e| StoreError::Corrupt(format!("eIM device {eid}: {e}")))?;
        Ok(Some(Versioned {
            record: doc.into_record(*eid)?,
            version: Version::new(
                u64::try_from(version)
                    .map_err(|_| StoreError::Corrupt(format!("version {version}")))?,
            ),
        }))
    }

    async fn device_by_transaction(
        &self,
        transaction_id: &EimTransactionId,
    ) -> StoreResult<Option<Eid>> {
        let row = sqlx::query("SELECT eid FROM eim_transactions WHERE transaction_id = $1")
            .bind(transaction_id.as_bytes().to_vec())
            .fetch_optional(self.reader())
            .await
            .map_err(db_err)?;
        row.map(|r| get::<String>(&r, "eid").and_then(|e| eid_of(&e)))
            .transpose()
    }

    async fn devices(&self, after: Option<Eid>, limit: usize) -> StoreResult<Vec<Eid>> {
        let limit = int(limit as u64, "limit")?;
        let rows = sqlx::query("SELECT eid FROM eim_devices WHERE eid > $1 ORDER BY eid LIMIT $2")
            .bind(after.map(|e| e.digits()).unwrap_or_default())
            .bind(limit)
            .fetch_all(self.reader())
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| get::<String>(r, "eid").and_then(|e| eid_of(&e)))
            .collect()
    }

    async fn package_result(
        &self,
        eid: &Eid,
        counter: Counter,
    ) -> StoreResult<Option<ResultRecord>> {
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM eim_results WHERE eid = $1 AND counter = $2 \
                     AND kind <> 'rollback' ORDER BY item_id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(eid.digits())
            .bind(i64::from(counter.get()))
            .fetch_optional(self.reader())
            .await
            .map_err(db_err)?;
        row.map(|r| result_row(&r)).transpose()
    }

    async fn results(&self, eid: &Eid) -> StoreResult<Vec<ResultRecord>> {
        let sql =
            format!("SELECT {RESULT_COLUMNS} FROM eim_results WHERE eid = $1 ORDER BY item_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(eid.digits())
            .fetch_all(self.reader())
            .await
            .map_err(db_err)?;
        rows.iter().map(result_row).collect()
    }

    async fn notifications(&self, eid: &Eid) -> StoreResult<Vec<NotificationRecord>> {
        let rows = sqlx::query(
            "SELECT seq_number, der, received_at FROM eim_notifications WHERE eid = $1 \
             ORDER BY seq_number",
        )
        .bind(eid.digits())
        .fetch_all(self.reader())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRecord {
                    eid: *eid,
                    seq_number: get(r, "seq_number")?,
                    der: get(r, "der")?,
                    received_at: Timestamp(get(r, "received_at")?),
                })
            })
            .collect()
    }

    async fn put_relay_session(&self, session: &RelaySession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO eim_relay_sessions (transaction_id, smdp_address, eid, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (transaction_id) DO UPDATE SET \
             smdp_address = excluded.smdp_address, eid = excluded.eid, \
             created_at = excluded.created_at",
        )
        .bind(session.transaction_id.to_hex())
        .bind(session.smdp_address.clone())
        .bind(session.eid.map(|e| e.digits()))
        .bind(session.created_at.0)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn relay_session(
        &self,
        transaction_id: &TransactionId,
    ) -> StoreResult<Option<RelaySession>> {
        let row = sqlx::query(
            "SELECT transaction_id, smdp_address, eid, created_at FROM eim_relay_sessions \
             WHERE transaction_id = $1",
        )
        .bind(transaction_id.to_hex())
        .fetch_optional(self.reader())
        .await
        .map_err(db_err)?;
        row.map(|r| {
            let eid: Option<String> = get(&r, "eid")?;
            let tid: String = get(&r, "transaction_id")?;
            Ok(RelaySession {
                transaction_id: TransactionId::from_hex(&tid).map_err(|_| {
                    StoreError::Corrupt(format!("invalid relayed ES9+ transaction id `{tid}`"))
                })?,
                smdp_address: get(&r, "smdp_address")?,
                eid: eid.as_deref().map(eid_of).transpose()?,
                created_at: Timestamp(get(&r, "created_at")?),
            })
        })
        .transpose()
    }

    async fn commit(&self, changes: EimChanges) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let writes = Prepared::new(changes)?.writes();
        self.commit_writes(writes).await.map_err(eim_err)
    }
}

/// A commit's rows, encoded before the transaction starts.
struct Prepared {
    device: Option<PreparedDevice>,
    results: Vec<PreparedResult>,
    notifications: Vec<NotificationRecord>,
}

struct PreparedDevice {
    eid: String,
    /// `None` for an insert.
    expected: Option<i64>,
    record: String,
    created_at: i64,
    updated_at: i64,
    transactions: Vec<Vec<u8>>,
}

struct PreparedResult {
    eid: String,
    item_id: i64,
    kind: &'static str,
    counter: Option<i64>,
    seq_number: Option<i64>,
    trust: Option<&'static str>,
    outcome: String,
    der: Vec<u8>,
    read_as: &'static str,
    received_at: i64,
}

impl Prepared {
    fn new(changes: EimChanges) -> StoreResult<Self> {
        let now = Timestamp::now().0;
        let device = changes
            .device
            .map(|write| {
                let (record, expected) = match write {
                    DeviceWrite::Insert(record) => (record, None),
                    DeviceWrite::Update { expected, record } => {
                        (record, Some(int(expected.get(), "version")?))
                    }
                };
                let text = serde_json::to_string(&DeviceDoc::from_record(&record))
                    .map_err(|e| StoreError::Backend(format!("encoding a device record: {e}")))?;
                Ok::<_, StoreError>(PreparedDevice {
                    eid: record.eid.digits(),
                    expected,
                    record: text,
                    created_at: record.created_at.0,
                    updated_at: now,
                    transactions: record
                        .transaction_ids()
                        .map(|t| t.as_bytes().to_vec())
                        .collect(),
                })
            })
            .transpose()?;
        let results = changes
            .results
            .into_iter()
            .map(|r| {
                Ok(PreparedResult {
                    eid: r.eid.digits(),
                    item_id: int(r.item_id, "item id")?,
                    kind: doc::kind_text(r.kind),
                    counter: r.counter.map(|c| i64::from(c.get())),
                    seq_number: r.seq_number,
                    trust: r.trust.map(doc::trust_text),
                    outcome: serde_json::to_string(&OutcomeDoc::from_outcome(&r.outcome))
                        .map_err(|e| StoreError::Backend(format!("encoding an outcome: {e}")))?,
                    der: r.der,
                    read_as: doc::version_text(r.read_as),
                    received_at: r.received_at.0,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(Self {
            device,
            results,
            notifications: changes.notifications,
        })
    }

    /// The commit's statements: on SQLite they go to the writer as one
    /// query (one hand-off to its connection thread instead of one per
    /// statement), inside a savepoint rolled back when one fails or the
    /// device is stale, so a failed commit leaves nothing in the group it
    /// shares; on PostgreSQL one by one, a failure rolling the transaction
    /// back. The device's compare-and-set comes first: a stale device fails
    /// the commit with [`StoreError::Stale`] before anything is written.
    fn writes(self) -> Writes {
        let mut writes = Writes::default();
        if let Some(d) = self.device {
            match d.expected {
                None => writes.push(
                    "INSERT INTO eim_devices (eid, version, record, created_at, updated_at) \
                     VALUES ($1, 0, $2, $3, $4)",
                    vec![
                        d.eid.clone().into(),
                        d.record.into(),
                        d.created_at.into(),
                        d.updated_at.into(),
                    ],
                ),
                Some(expected) => {
                    writes.push_checked(
                        "UPDATE eim_devices SET version = version + 1, record = $1, \
                         updated_at = $2 WHERE eid = $3 AND version = $4",
                        vec![
                            d.record.into(),
                            d.updated_at.into(),
                            d.eid.clone().into(),
                            expected.into(),
                        ],
                    );
                    writes.push(
                        "DELETE FROM eim_transactions WHERE eid = $1",
                        vec![d.eid.clone().into()],
                    );
                }
            }
            for tid in d.transactions {
                writes.push(
                    "INSERT INTO eim_transactions (transaction_id, eid) VALUES ($1, $2)",
                    vec![tid.into(), d.eid.clone().into()],
                );
            }
        }
        for r in self.results {
            writes.push(
                "INSERT INTO eim_results (eid, item_id, kind, counter, seq_number, trust, \
                 outcome, der, read_as, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                vec![
                    r.eid.into(),
                    r.item_id.into(),
                    r.kind.into(),
                    r.counter.into(),
                    r.seq_number.into(),
                    r.trust.map(str::to_owned).into(),
                    r.outcome.into(),
                    r.der.into(),
                    r.read_as.into(),
                    r.received_at.into(),
                ],
            );
        }
        for n in self.notifications {
            writes.push(
                "INSERT INTO eim_notifications (eid, seq_number, der, received_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (eid, seq_number) DO NOTHING",
                vec![
                    n.eid.digits().into(),
                    n.seq_number.into(),
                    n.der.into(),
                    n.received_at.0.into(),
                ],
            );
        }
        writes
    }
}
