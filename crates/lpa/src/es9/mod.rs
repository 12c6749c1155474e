//! ES9+: the LPA's calls to an SM-DP+ (SGP.22 section 5.6, JSON binding of
//! section 6).
//!
//! [`Es9Client`] is the seam: the download and notification flows call it,
//! and two implementations answer:
//! - [`https::HttpsEs9Client`]: HTTPS POST to `https://{address}/gsma/rsp2/es9plus/{function}`
//!   with the headers real LPAs send, trusting the configured CI/CA certificates;
//! - `inprocess::InProcessEs9` (feature `inprocess`): direct calls into a
//!   `ferrosim_smdp::Smdp`, for the simulator and benchmarks.
//!
//! [`RoundRobin`] wraps either to spread the calls over several instances
//! of one SM-DP+.
//!
//! Both report a `Failed` function execution status as
//! [`Es9ClientError::Failed`] with its subject and reason codes.

pub mod https;
#[cfg(feature = "inprocess")]
pub mod inprocess;
mod round_robin;

use std::future::Future;

use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, AuthenticateClientResponse, CancelSessionRequest,
    CancelSessionResponse, GetBoundProfilePackageRequest, GetBoundProfilePackageResponse,
    HandleNotificationRequest, InitiateAuthenticationRequest, InitiateAuthenticationResponse,
};
use thiserror::Error;

use crate::activation_code::SmdpAddress;

pub use round_robin::RoundRobin;

/// The ES9+ functions an LPA calls. `address` is the SM-DP+ to call (from
/// the activation code, or a notification's address).
pub trait Es9Client: Send + Sync {
    /// `initiateAuthentication`.
    fn initiate_authentication(
        &self,
        address: &SmdpAddress,
        request: &InitiateAuthenticationRequest,
    ) -> impl Future<Output = Result<InitiateAuthenticationResponse, Es9ClientError>> + Send;

    /// `authenticateClient`.
    fn authenticate_client(
        &self,
        address: &SmdpAddress,
        request: &AuthenticateClientRequest,
    ) -> impl Future<Output = Result<AuthenticateClientResponse, Es9ClientError>> + Send;

    /// `getBoundProfilePackage`.
    fn get_bound_profile_package(
        &self,
        address: &SmdpAddress,
        request: &GetBoundProfilePackageRequest,
    ) -> impl Future<Output = Result<GetBoundProfilePackageResponse, Es9ClientError>> + Send;

    /// `handleNotification`: `Ok` once the SM-DP+ acknowledged it.
    fn handle_notification(
        &self,
        address: &SmdpAddress,
        request: &HandleNotificationRequest,
    ) -> impl Future<Output = Result<(), Es9ClientError>> + Send;

    /// `cancelSession`.
    fn cancel_session(
        &self,
        address: &SmdpAddress,
        request: &CancelSessionRequest,
    ) -> impl Future<Output = Result<CancelSessionResponse, Es9ClientError>> + Send;
}

/// Why an ES9+ call failed.
#[derive(Debug, Error)]
pub enum Es9ClientError {
    /// The SM-DP+ executed the function and reported failure.
    #[error("{function} failed at the SM-DP+: subject {subject_code}, reason {reason_code}{}",
        message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Failed {
        /// The ES9+ function.
        function: &'static str,
        /// SGP.22 subject code, e.g. `8.2.7`.
        subject_code: String,
        /// SGP.22 reason code, e.g. `3.8`.
        reason_code: String,
        /// The SM-DP+'s message, if any.
        message: Option<String>,
    },
    /// The SM-DP+ could not be reached or the connection broke.
    #[error("{function}: cannot reach the SM-DP+ at {address}: {reason}")]
    Unreachable {
        /// The ES9+ function.
        function: &'static str,
        /// The address called.
        address: String,
        /// The error chain, as text.
        reason: String,
    },
    /// The SM-DP+ did not answer in time.
    #[error("{function}: the SM-DP+ at {address} did not answer in time")]
    Timeout {
        /// The ES9+ function.
        function: &'static str,
        /// The address called.
        address: String,
    },
    /// The SM-DP+ answered with an HTTP status the binding does not allow.
    #[error("{function}: unexpected HTTP status {status} from the SM-DP+")]
    HttpStatus {
        /// The ES9+ function.
        function: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not the JSON the binding defines.
    #[error("{function}: malformed answer from the SM-DP+: {reason}")]
    BadResponse {
        /// The ES9+ function.
        function: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The client cannot be built (unreadable certificates, TLS setup).
    #[error("ES9+ client setup: {0}")]
    Setup(String),
    /// This client does not serve the address (in-process SM-DP+ of another address).
    #[error("no SM-DP+ at {0} in this process")]
    UnknownAddress(String),
}

impl Es9ClientError {
    /// Whether trying again later may succeed (network trouble, timeouts,
    /// server errors), as opposed to a definite refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Failed { .. }
            | Self::BadResponse { .. }
            | Self::Setup(_)
            | Self::UnknownAddress(_) => false,
        }
    }

    /// The subject and reason codes, for a `Failed` status.
    pub fn status_codes(&self) -> Option<(&str, &str)> {
        match self {
            Self::Failed {
                subject_code,
                reason_code,
                ..
            } => Some((subject_code, reason_code)),
            _ => None,
        }
    }
}

/// ES9+ function names, as they appear in the URL path.
pub mod function {
    /// `initiateAuthentication`.
    pub const INITIATE_AUTHENTICATION: &str = "initiateAuthentication";
    /// `authenticateClient`.
    pub const AUTHENTICATE_CLIENT: &str = "authenticateClient";
    /// `getBoundProfilePackage`.
    pub const GET_BOUND_PROFILE_PACKAGE: &str = "getBoundProfilePackage";
    /// `handleNotification`.
    pub const HANDLE_NOTIFICATION: &str = "handleNotification";
    /// `cancelSession`.
    pub const CANCEL_SESSION: &str = "cancelSession";
}
