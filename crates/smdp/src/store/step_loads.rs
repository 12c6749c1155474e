//! The loads of an ES9+ step, asked for together so that a store can read
//! them in one round trip.
//!
//! The defaults read record by record through [`SessionStore`] and
//! [`ProfileStore`]; `ferrosim-store` answers each in one query on SQLite
//! (each round trip there is a hand-off to the connection's own thread).

use std::future::Future;

use ferrosim_saip::Personalisation;

use super::{ProfileSelector, ProfileStore, SessionStore, StoreResult, Versioned};
use crate::ids::TransactionId;
use crate::order::ProfileRecord;
use crate::session::SessionRecord;

/// The records an ES9+ step works on, as loaded.
#[derive(Debug, Default)]
pub struct StepRecords {
    /// The session of the request's transaction id.
    pub session: Option<Versioned<SessionRecord>>,
    /// The profile the step works on.
    pub profile: Option<Versioned<ProfileRecord>>,
    /// The profile's personalisation values, when asked for.
    pub personalisation: Option<Personalisation>,
}

/// The combined loads of the ES9+ steps.
pub trait StepLoadStore: SessionStore + ProfileStore {
    /// `authenticateClient`: the session `tid` and, when it exists, the
    /// profile `selector` names.
    fn session_and_profile(
        &self,
        tid: &TransactionId,
        selector: Option<&ProfileSelector>,
    ) -> impl Future<Output = StoreResult<StepRecords>> + Send {
        async move {
            let session = self.session(tid).await?;
            let profile = match (&session, selector) {
                (Some(_), Some(sel)) => self.find_profile(sel).await?,
                _ => None,
            };
            Ok(StepRecords {
                session,
                profile,
                personalisation: None,
            })
        }
    }

    /// `getBoundProfilePackage` and `handleNotification`: the session `tid`,
    /// the profile bound to it (by the ICCID of its binding) and, with
    /// `personalisation`, that profile's personalisation values. No profile
    /// when the session is unknown or was never bound.
    fn session_and_bound_profile(
        &self,
        tid: &TransactionId,
        personalisation: bool,
    ) -> impl Future<Output = StoreResult<StepRecords>> + Send {
        async move {
            let session = self.session(tid).await?;
            let iccid = session
                .as_ref()
                .and_then(|s| s.record.binding())
                .map(|b| b.iccid.clone());
            let mut records = StepRecords {
                session,
                ..StepRecords::default()
            };
            if let Some(iccid) = iccid {
                records.profile = self
                    .find_profile(&ProfileSelector::Iccid(iccid.clone(), None))
                    .await?;
                if personalisation && records.profile.is_some() {
                    records.personalisation = self.personalisation(&iccid).await?;
                }
            }
            Ok(records)
        }
    }
}
