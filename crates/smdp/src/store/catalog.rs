//! Operators and profile types: what is sold, and to whom ES2+ is open.

use std::future::Future;

use super::StoreResult;
use crate::ids::OperatorId;
use crate::metadata::ProfileTypeMetadata;
use crate::time::Timestamp;

/// An operator allowed to use ES2+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Its `functionRequesterIdentifier`.
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// SHA-256 of its API token (the token itself is never stored).
    pub token_hash: [u8; 32],
    /// Where `handleDownloadProgressInfo` callbacks go, if anywhere.
    pub callback_url: Option<String>,
}

/// A profile type: an unprotected profile package used as the template of
/// every profile of the type, and the metadata shown to the end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTypeRecord {
    /// Owner.
    pub operator: OperatorId,
    /// Name used in ES2+ `profileType`.
    pub name: String,
    /// The unprotected profile package (SAIP DER) personalised per profile.
    pub package: Vec<u8>,
    /// Metadata (service provider, name, class, PPRs).
    pub metadata: ProfileTypeMetadata,
    /// When this version was imported.
    pub created_at: Timestamp,
    /// 1 for the first import of the name, one more for each new version.
    /// Every version is kept: an order keeps the version it was made with.
    pub version: u32,
}

/// Operators and profile types.
pub trait CatalogStore: Send + Sync + 'static {
    /// Creates or replaces an operator. Two operators cannot share a token
    /// hash ([`super::StoreError::Conflict`]).
    fn put_operator(&self, operator: &Operator) -> impl Future<Output = StoreResult<()>> + Send;
    /// The operator whose token hashes to `token_hash`.
    fn operator_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<Operator>>> + Send;
    /// The operator with this id.
    fn operator(
        &self,
        id: &OperatorId,
    ) -> impl Future<Output = StoreResult<Option<Operator>>> + Send;

    /// Stores a new version of a profile type of an existing operator:
    /// `t.version` must be 1 for a new name, else the latest version + 1
    /// ([`super::StoreError::Conflict`] otherwise, e.g. when another import
    /// took that number first). Earlier versions are kept.
    fn put_profile_type(
        &self,
        t: &ProfileTypeRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The latest version of one profile type of an operator.
    fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<ProfileTypeRecord>>> + Send;
    /// One version of a profile type.
    fn profile_type_version(
        &self,
        operator: &OperatorId,
        name: &str,
        version: u32,
    ) -> impl Future<Output = StoreResult<Option<ProfileTypeRecord>>> + Send;
}
