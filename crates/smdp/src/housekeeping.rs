//! Ending orders whose time is up, as a step and a driver like the others.
//! Safe to run on every instance at once: each expiry is committed against
//! the version it read, and a second run finds nothing left to do.

use crate::Smdp;
use crate::order::ProfileRecord;
use crate::step::Outcome;
use crate::store::{Changes, ProfileSelector, ProfileWrite, Store, StoreError, Versioned};
use crate::time::Timestamp;

/// The expiry step: ends the order of `profile` if it is open and its time
/// passed at `now`, with the event for the operator. Answers whether it ended.
pub fn expire_order(
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<bool, StoreError> {
    let Some(read) = profile else {
        return Outcome::new(Changes::default(), Ok(false));
    };
    let mut p = read.record.clone();
    match p.expire_if_due(now) {
        Some(event) => Outcome::new(
            Changes {
                profile: Some(ProfileWrite::new(read, p)),
                events: vec![event],
                ..Changes::default()
            },
            Ok(true),
        ),
        None => Outcome::new(Changes::default(), Ok(false)),
    }
}

impl<S: Store> Smdp<S> {
    /// Expires up to `limit` due orders; returns how many ended. An order
    /// changed by someone else meanwhile is looked at again.
    pub async fn expire_orders(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut expired = 0;
        for iccid in self.store.due_expiries(now, limit).await? {
            let selector = ProfileSelector::Iccid(iccid, None);
            for _ in 0..crate::step::ATTEMPTS {
                let profile = self.store.find_profile(&selector).await?;
                if let Some(ended) = self.settle(expire_order(profile, now)).await? {
                    expired += u64::from(ended);
                    break;
                }
            }
        }
        Ok(expired)
    }
}
