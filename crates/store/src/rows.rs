//! Turning rows into records and database errors into [`StoreError`].

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::{MatchingId, OperatorId, TransactionId};
use ferrosim_smdp::store::{StoreError, Version};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Maps a sqlx error: unique violations become [`StoreError::Conflict`], the
/// compare-and-set guard of SQLite [`StoreError::Stale`].
pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(db.message().to_owned());
        }
        if db.message().contains(crate::writes::STALE_MARKER) {
            return StoreError::Stale;
        }
    }
    StoreError::Backend(e.to_string())
}

/// A column of the row, or a corruption error naming it.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// A value the record parsers read from a row: decodable both from sqlx's
/// rows and from the hot readers' (see [`crate::readers`]).
pub(crate) trait ColValue:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> ColValue for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A row the record parsers read by column name.
pub(crate) trait StoreRow {
    /// The column `name`, or a corruption error naming it.
    fn value<T: ColValue>(&self, name: &str) -> Result<T, StoreError>;
}

impl StoreRow for AnyRow {
    fn value<T: ColValue>(&self, name: &str) -> Result<T, StoreError> {
        col(self, name)
    }
}

/// The column `name` of `row` (of either kind), or a corruption error.
pub(crate) fn get<R: StoreRow + ?Sized, T: ColValue>(row: &R, name: &str) -> Result<T, StoreError> {
    row.value(name)
}

pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("invalid {what} `{value}`"))
}

pub(crate) fn iccid(s: &str) -> Result<Iccid, StoreError> {
    Iccid::new(s).map_err(|_| corrupt("ICCID", s))
}

pub(crate) fn opt_iccid(s: Option<String>) -> Result<Option<Iccid>, StoreError> {
    s.as_deref().map(iccid).transpose()
}

pub(crate) fn eid(s: &str) -> Result<Eid, StoreError> {
    s.parse::<Eid>().map_err(|_| corrupt("EID", s))
}

pub(crate) fn opt_eid(s: Option<String>) -> Result<Option<Eid>, StoreError> {
    s.as_deref().map(eid).transpose()
}

pub(crate) fn operator(s: String) -> Result<OperatorId, StoreError> {
    OperatorId::new(s.clone()).map_err(|_| corrupt("operator id", s))
}

pub(crate) fn opt_matching_id(s: Option<String>) -> Result<Option<MatchingId>, StoreError> {
    s.map(|v| MatchingId::new(v.clone()).map_err(|_| corrupt("matching id", v)))
        .transpose()
}

pub(crate) fn opt_tid(b: Option<Vec<u8>>) -> Result<Option<TransactionId>, StoreError> {
    b.map(|v| TransactionId::from_bytes(&v).map_err(|_| corrupt("transaction id", hex::encode(&v))))
        .transpose()
}

/// A stored version.
pub(crate) fn version(v: i64) -> Result<Version, StoreError> {
    u64::try_from(v)
        .map(Version::new)
        .map_err(|_| corrupt("version", v))
}

pub(crate) fn u32_of(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(what, v))
}

pub(crate) fn hash32(v: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt(what, hex::encode(&v)))
}
