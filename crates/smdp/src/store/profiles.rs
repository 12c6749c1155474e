//! Profiles and the orders on them: import, loading for a step, listings.

use std::future::Future;

use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Personalisation};

use super::{StoreResult, Versioned};
use crate::ids::{MatchingId, OperatorId};
use crate::order::{ProfileRecord, ProfileState};
use crate::time::Timestamp;

/// Which profile a step loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSelector {
    /// The profile with this ICCID, if it belongs to the operator (when given).
    Iccid(Iccid, Option<OperatorId>),
    /// The profile whose order has this matching id.
    MatchingId(MatchingId),
    /// The oldest released order linked to this EID (default SM-DP+ address
    /// or SM-DS: the device has no matching id).
    ReleasedForEid(Eid),
}

/// A filter for listing profiles.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    /// Only this operator's profiles.
    pub operator: Option<OperatorId>,
    /// Only this type.
    pub profile_type: Option<String>,
    /// Only this state.
    pub state: Option<ProfileState>,
    /// At most this many (newest changes first); 0 means 1000.
    pub limit: u32,
}

/// A profile to import, with the values its package is personalised with.
#[derive(Debug, Clone)]
pub struct NewProfile {
    /// The record (normally `Available`).
    pub record: ProfileRecord,
    /// ICCID, IMSI, keys and codes for the package.
    pub personalisation: Personalisation,
}

/// Profiles and their orders. Changes go through [`super::CommitStore`].
///
/// A profile's ICCID, operator and type are fixed at import; a commit
/// rewrites its state, its order and its change time.
pub trait ProfileStore: Send + Sync + 'static {
    /// Imports profiles in one transaction, each at [`super::Version::INITIAL`];
    /// a duplicate ICCID, or a type the operator does not have, fails the
    /// whole batch.
    fn insert_profiles(
        &self,
        profiles: &[NewProfile],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// One profile.
    fn profile(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = StoreResult<Option<ProfileRecord>>> + Send;
    /// The profile a step works on, with its version.
    fn find_profile(
        &self,
        selector: &ProfileSelector,
    ) -> impl Future<Output = StoreResult<Option<Versioned<ProfileRecord>>>> + Send;
    /// Up to `limit` available profiles of an operator's type, by ICCID: the
    /// candidates of a `downloadOrder` by type.
    fn available_profiles(
        &self,
        operator: &OperatorId,
        profile_type: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Versioned<ProfileRecord>>>> + Send;
    /// The personalisation values of a profile.
    fn personalisation(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = StoreResult<Option<Personalisation>>> + Send;
    /// Profiles matching a filter, most recently changed first (then by ICCID).
    fn list_profiles(
        &self,
        filter: &ProfileFilter,
    ) -> impl Future<Output = StoreResult<Vec<ProfileRecord>>> + Send;
    /// Number of profiles per state (ordered by the state's name), optionally
    /// for one operator.
    fn count_profiles(
        &self,
        operator: Option<&OperatorId>,
    ) -> impl Future<Output = StoreResult<Vec<(ProfileState, u64)>>> + Send;
    /// ICCIDs of open, not yet downloaded orders whose expiry passed (at most `limit`).
    fn due_expiries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Iccid>>> + Send;
}
