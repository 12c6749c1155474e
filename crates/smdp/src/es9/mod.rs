//! ES9+: the functions a device's LPA calls to download a profile
//! (SGP.22 section 5.6).
//!
//! Each function is a pure step ([`initiate_authentication`],
//! [`authenticate_client`], [`get_bound_profile_package`],
//! [`handle_notification`], [`cancel_session`]: see [`crate::step`]) and an
//! async driver of the same name on [`crate::Smdp`] that loads, steps and
//! commits. Each checks everything common mutual authentication requires,
//! over the bytes as received, and fails with an [`Es9Error`] that names what
//! went wrong and maps to its SGP.22 status code.

mod authenticate;
mod cancel;
mod initiate;
mod notification;
mod package;

pub use authenticate::{authenticate_client, authenticate_client_loads};
pub use cancel::cancel_session;
pub use initiate::initiate_authentication;
pub use notification::{NotificationHandled, ReceivedNotification, handle_notification};
pub use package::{PackageInputs, get_bound_profile_package};

use ferrosim_pki::CertRole;
use thiserror::Error;

use crate::order::OrderError;
use crate::status::StatusCode;
use crate::store::StoreError;

/// Why an ES9+ function failed.
#[derive(Debug, Error)]
pub enum Es9Error {
    /// The request is not valid JSON, hex, base64 or DER, or a field has the wrong shape.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The SM-DP+ address in the request is not ours.
    #[error("SM-DP+ address `{0}` refused")]
    AddressRefused(String),
    /// The eUICC implements an SGP.22 version we do not.
    #[error("eUICC specification version {0} not supported")]
    UnsupportedSvn(String),
    /// No CI the eUICC signs with is trusted here.
    #[error("none of the eUICC's CI key ids for signing is trusted")]
    NoCommonCi,
    /// The eUICC cannot verify our DPauth certificate's CI.
    #[error("the eUICC does not trust the CI of our DPauth certificate")]
    DpauthCiNotAccepted,
    /// The transaction id is unknown, ended, or does not match the signed one.
    #[error("unknown or ended transaction {0}")]
    UnknownTransaction(String),
    /// The certificate chain of the eUICC failed verification.
    #[error("eUICC certificate chain: {0}")]
    Chain(#[from] ferrosim_pki::Error),
    /// The eUICC chain ends at another CI than the one agreed.
    #[error("the eUICC chain ends at another CI than agreed")]
    CiMismatch,
    /// An eUICC signature over a message did not verify.
    #[error("eUICC signature over {0} does not verify")]
    EuiccSignature(&'static str),
    /// The eUICC signed another server challenge than ours.
    #[error("the eUICC signed another server challenge")]
    ServerChallengeMismatch,
    /// The matching id is unknown or refers to no released order.
    #[error("matching id refused")]
    MatchingIdRefused,
    /// The eUICC answered with an error instead of the expected response.
    #[error("the eUICC reported error {code} in {message}")]
    EuiccError {
        /// The message type.
        message: &'static str,
        /// The eUICC's error code.
        code: i64,
    },
    /// The signed SM-DP+ OID is not ours.
    #[error("SM-DP+ OID refused")]
    OidMismatch,
    /// The order does not allow this step.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// Too many sessions wait for `authenticateClient` already.
    #[error("too many download sessions pending ({0}); retry later")]
    TooManySessions(u64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure on our side (signing key, corrupt template...).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Es9Error {
    /// The SGP.22 status code this failure is reported with.
    pub fn status(&self) -> StatusCode {
        use ferrosim_pki::Error as P;
        match self {
            Self::BadRequest(_) => StatusCode::INVALID_REQUEST_FORMAT,
            Self::AddressRefused(_) => StatusCode::SMDP_ADDRESS_REFUSED,
            Self::UnsupportedSvn(_) => StatusCode::SVN_NOT_SUPPORTED,
            Self::NoCommonCi => StatusCode::CI_KEY_NOT_SUPPORTED,
            Self::DpauthCiNotAccepted => StatusCode::DPAUTH_CI_NOT_SUPPORTED,
            Self::UnknownTransaction(_) => StatusCode::TRANSACTION_ID_UNKNOWN,
            Self::Chain(e) => match e {
                P::UnknownCi(_) => StatusCode::CI_KEY_UNKNOWN,
                P::EidOutsideEumRange { .. } | P::EumWithoutEidRange => {
                    StatusCode::EID_OUTSIDE_EUM_RANGE
                }
                P::Expired { cert, .. } | P::NotYetValid { cert, .. } => {
                    if *cert == CertRole::Eum {
                        StatusCode::EUM_CERT_EXPIRED
                    } else {
                        StatusCode::EUICC_CERT_EXPIRED
                    }
                }
                P::BadSignature { cert }
                | P::WrongKeyUsage { cert, .. }
                | P::WrongBasicConstraints { cert, .. }
                | P::NotIssuedBy { cert, .. }
                    if *cert == CertRole::Eum =>
                {
                    StatusCode::EUM_CERT_INVALID
                }
                P::WrongPolicy {
                    expected: CertRole::Eum,
                    ..
                } => StatusCode::EUM_CERT_INVALID,
                // A revoked certificate, or one whose CRL is stale or missing
                // under the `refuse` policy, fails verification (reason 6.1)
                // of the certificate concerned: EUM 8.1.2, eUICC 8.1.3.
                P::Revoked { cert, .. } | P::RevocationUnknown { cert, .. }
                    if *cert == CertRole::Eum =>
                {
                    StatusCode::EUM_CERT_INVALID
                }
                _ => StatusCode::EUICC_CERT_INVALID,
            },
            Self::CiMismatch => StatusCode::CI_KEY_UNKNOWN,
            Self::EuiccSignature(_) | Self::ServerChallengeMismatch | Self::EuiccError { .. } => {
                StatusCode::EUICC_VERIFICATION_FAILED
            }
            Self::MatchingIdRefused => StatusCode::MATCHING_ID_REFUSED,
            Self::OidMismatch => StatusCode::SMDP_OID_INVALID,
            Self::Order(e) => e.status(),
            Self::TooManySessions(_) | Self::Store(_) | Self::Internal(_) => {
                StatusCode::EXECUTION_ERROR
            }
        }
    }
}

/// Maps a decoding failure of a received structure.
pub(crate) fn bad_der(what: &'static str) -> impl Fn(ferrosim_asn1::Error) -> Es9Error {
    move |e| Es9Error::BadRequest(format!("{what}: {e}"))
}

impl<S: crate::store::Store> crate::Smdp<S> {
    /// The profile type a step's profile (if it found one) is built from,
    /// from the cache when fresh; a type that cannot be loaded is an
    /// internal error of the step.
    pub(crate) async fn step_template(
        &self,
        profile: Option<&crate::store::Versioned<crate::order::ProfileRecord>>,
        now: crate::time::Timestamp,
    ) -> Result<Option<std::sync::Arc<crate::service::ProfileTemplate>>, Es9Error> {
        match profile {
            Some(p) => self
                .profile_template(&p.record, now)
                .await
                .map(Some)
                .map_err(|e| Es9Error::Internal(e.to_string())),
            None => Ok(None),
        }
    }
}
