//! [`EndOfLifeStore`]: where revoked profiles' ICCIDs are, and each
//! operator's reuse policy ([`crate::end_of_life`] decides; this stores).

use std::future::Future;

use ferrosim_saip::Iccid;

use super::StoreResult;
use crate::end_of_life::{EndOfLifeState, ReusePolicy, Revocation};
use crate::ids::OperatorId;

/// Revocations and reuse policies. Both stores also enforce the policy at
/// import ([`super::ProfileStore::insert_profiles`] refuses a revoked ICCID
/// unless [`crate::end_of_life::check_reuse`] allows it, and then replaces
/// the old profile and forgets its revocation).
pub trait EndOfLifeStore: Send + Sync + 'static {
    /// The revocation of `iccid`, if it was revoked.
    fn revocation(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = StoreResult<Option<Revocation>>> + Send;
    /// Stores a new revocation. A profile revoked already is a
    /// [`super::StoreError::Conflict`] and changes nothing.
    fn insert_revocation(&self, r: &Revocation) -> impl Future<Output = StoreResult<()>> + Send;
    /// Revocations, oldest first (then by ICCID); only those in `state` when
    /// given, only those of `operator` when given (at most 1,000).
    fn revocations(
        &self,
        state: Option<EndOfLifeState>,
        operator: Option<&OperatorId>,
    ) -> impl Future<Output = StoreResult<Vec<Revocation>>> + Send;
    /// Moves every revocation waiting for its device whose delete
    /// notification (same ICCID, same EID when known, received at or after
    /// the revocation) the store has recorded to its policy's state, with
    /// the earliest such notification's time. Returns those that moved.
    fn settle_device_deletes(&self) -> impl Future<Output = StoreResult<Vec<Revocation>>> + Send;
    /// The operator's reuse policy (retire when none was set).
    fn reuse_policy(
        &self,
        operator: &OperatorId,
    ) -> impl Future<Output = StoreResult<ReusePolicy>> + Send;
    /// Sets the operator's reuse policy (for revocations from now on).
    fn set_reuse_policy(
        &self,
        operator: &OperatorId,
        policy: ReusePolicy,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
