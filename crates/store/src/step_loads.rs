//! The loads of an ES9+ step in as few round trips as the backend allows
//! ([`StepLoadStore`]).
//!
//! On SQLite the session's `SELECT` and the profile's (with its
//! personalisation for `getBoundProfilePackage`) run one after the other on
//! one of the hot readers, on the calling thread (see [`crate::readers`]);
//! without hot readers (an in-memory database) they go as one query of two
//! statements on the read pool. The profile bound to a session is
//! selected through the session's row (`WHERE iccid = (SELECT iccid FROM
//! sessions ...)`), so it needs nothing the first `SELECT` returned.
//! PostgreSQL prepares each statement, so there the two go one after the
//! other (still one fewer than record by record for a package).
//!
//! Each statement reads what is committed when it runs; as with separate
//! loads, a commit then checks that neither record changed since.

use ferrosim_smdp::ids::TransactionId;
use ferrosim_smdp::order::ProfileRecord;
use ferrosim_smdp::store::{ProfileSelector, StepLoadStore, StepRecords, StoreError, Versioned};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{Column, Row};

use crate::profiles::{PROFILE_COLUMNS, select_profile, versioned_profile_row};
use crate::readers::HotRow;
use crate::rows::{backend_err, get};
use crate::sessions::{SESSION_COLUMNS, session_row};
use crate::writes::{Val, bind_all};
use crate::{Backend, SqlStore};

/// The column only the session's rows have: tells them from the profile's.
const SESSION_MARKER: &str = "server_challenge";

impl StepLoadStore for SqlStore {
    async fn session_and_profile(
        &self,
        tid: &TransactionId,
        selector: Option<&ProfileSelector>,
    ) -> Result<StepRecords, StoreError> {
        let (Some(selector), Backend::Sqlite) = (selector, self.backend) else {
            // Record by record: PostgreSQL prepares one statement per query.
            let session = self.session_impl(tid).await?;
            let profile = match (&session, selector) {
                (Some(_), Some(sel)) => self.find_profile_impl(sel).await?,
                _ => None,
            };
            return Ok(StepRecords {
                session,
                profile,
                personalisation: None,
            });
        };
        let (profile_sql, mut vals) = select_profile(selector, 2);
        vals.insert(0, tid.as_bytes().to_vec().into());
        let mut records = self.load_two(&profile_sql, vals, false).await?;
        if records.session.is_none() {
            // As record by record: no profile for an unknown session.
            records.profile = None;
        }
        Ok(records)
    }

    async fn session_and_bound_profile(
        &self,
        tid: &TransactionId,
        personalisation: bool,
    ) -> Result<StepRecords, StoreError> {
        let extra = if personalisation {
            ", personalisation"
        } else {
            ""
        };
        let profile_sql = format!(
            "SELECT {PROFILE_COLUMNS}{extra} FROM profiles \
             WHERE iccid = (SELECT iccid FROM sessions WHERE transaction_id = $1)"
        );
        let vals = vec![tid.as_bytes().to_vec().into()];
        let mut records = self.load_two(&profile_sql, vals, personalisation).await?;
        // As record by record: only the profile of the session's binding.
        let bound = records
            .session
            .as_ref()
            .and_then(|s| s.record.binding())
            .map(|b| &b.iccid);
        if records.profile.as_ref().map(|p| &p.record.iccid) != bound {
            records.profile = None;
            records.personalisation = None;
        }
        Ok(records)
    }
}

impl SqlStore {
    /// The session `$1` and the one profile `profile_sql` selects (with
    /// the `personalisation` column when `personalisation`). On PostgreSQL
    /// `vals` must be the session's `$1` alone.
    async fn load_two(
        &self,
        profile_sql: &str,
        vals: Vec<Val>,
        personalisation: bool,
    ) -> Result<StepRecords, StoreError> {
        let session_sql =
            format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE transaction_id = $1");
        let profile_of =
            |r: &HotRow<'_>| -> Result<(Versioned<ProfileRecord>, Option<String>), StoreError> {
                let text = if personalisation {
                    Some(get::<_, String>(r, "personalisation")?)
                } else {
                    None
                };
                Ok((versioned_profile_row(r)?, text))
            };
        let (session, profile) = match (&self.readers, self.backend) {
            // Both statements on one hot reader, on this thread.
            (Some(readers), _) => readers.read(|s| {
                let session = s.first(&session_sql, &vals, |r| session_row(r))?;
                let profile = s.first(profile_sql, &vals, profile_of)?;
                Ok((session, profile))
            })?,
            (None, Backend::Sqlite) => {
                // One query of two statements on the read pool.
                let sql = format!("{session_sql};\n{profile_sql}");
                let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), vals)
                    .fetch_all(self.reader())
                    .await
                    .map_err(backend_err)?;
                let (session, profile) = split_rows(rows);
                (
                    session.as_ref().map(session_row).transpose()?,
                    profile
                        .as_ref()
                        .map(|r| profile_of(&HotRow::Any(r)))
                        .transpose()?,
                )
            }
            (None, Backend::Postgres) => {
                // Only the session's `$1` here (see `session_and_profile`).
                let session = self
                    .hot_first(session_sql, vals.clone(), |r| session_row(r))
                    .await?;
                let profile = self
                    .hot_first(profile_sql.to_owned(), vals, profile_of)
                    .await?;
                (session, profile)
            }
        };
        let (profile, personalisation) = match profile {
            Some((p, Some(text))) => {
                let opened = self
                    .open_personalisation_text(&p.record.iccid, &text)
                    .await?;
                (Some(p), Some(opened))
            }
            Some((p, None)) => (Some(p), None),
            None => (None, None),
        };
        Ok(StepRecords {
            session,
            profile,
            personalisation,
        })
    }
}

/// The session's row and the profile's row of a two-statement query.
fn split_rows(rows: Vec<AnyRow>) -> (Option<AnyRow>, Option<AnyRow>) {
    let (mut session, mut profile) = (None, None);
    for row in rows {
        let is_session = row.columns().iter().any(|c| c.name() == SESSION_MARKER);
        let slot = if is_session {
            &mut session
        } else {
            &mut profile
        };
        // The first row, as a query of its own would give.
        slot.get_or_insert(row);
    }
    (session, profile)
}
