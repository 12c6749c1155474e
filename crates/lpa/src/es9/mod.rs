//! ES9+: the LPA's calls to an SM-DP+ (SGP.22 section 5.6, JSON binding of
//! section 6).
//!
//! [`Es9Client`] is the seam: the download and notification flows call it,
//! and two implementations answer:
//! - `https::HttpsEs9Client` (feature `https`): HTTPS POST to `https://{address}/gsma/rsp2/es9plus/{function}`
//!   with the headers real LPAs send, trusting the configured CI/CA certificates;
//! - `inprocess::InProcessEs9` (feature `inprocess`): direct calls into a
//!   `ferrosim_smdp::Smdp`, for the simulator and benchmarks.
//!
//! [`RoundRobin`] wraps either to spread the calls over several instances
//! of one SM-DP+.
//!
//! Both report a `Failed` function execution status as
//! [`Es9ClientError::Failed`] with its subject and reason codes.

#[cfg(feature = "https")]
pub mod https;
#[cfg(feature = "inprocess")]
pub mod inprocess;
mod request;
mod round_robin;

use std::future::Future;

use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, AuthenticateClientResponse, CancelSessionRequest,
    CancelSessionResponse, GetBoundProfilePackageRequest, GetBoundProfilePackageResponse,
    HandleNotificationRequest, InitiateAuthenticationRequest, InitiateAuthenticationResponse,
};
use ferrosim_asn1::json::{Answer, read_answer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::activation_code::SmdpAddress;

pub use request::{Es9Call, Es9Request, Es9Response};
pub use round_robin::RoundRobin;

/// The ES9+ functions an LPA calls. `address` is the SM-DP+ to call (from
/// the activation code, or a notification's address).
///
/// An implementation provides [`Es9Client::call`], generic over the
/// function ([`function::InitiateAuthentication`], ...); the typed methods
/// below are what the download and notification flows use. A wrapper (a
/// load balancer, a test double that loses an answer) implements `call`
/// once and looks at `F::NAME` where it treats one function differently.
pub trait Es9Client: Send + Sync {
    /// Calls the ES9+ function `F`.
    fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> impl Future<Output = Result<F::Response, Es9ClientError>> + Send;

    /// `initiateAuthentication`.
    fn initiate_authentication(
        &self,
        address: &SmdpAddress,
        request: &InitiateAuthenticationRequest,
    ) -> impl Future<Output = Result<InitiateAuthenticationResponse, Es9ClientError>> + Send {
        self.call::<function::InitiateAuthentication>(address, request)
    }

    /// `authenticateClient`.
    fn authenticate_client(
        &self,
        address: &SmdpAddress,
        request: &AuthenticateClientRequest,
    ) -> impl Future<Output = Result<AuthenticateClientResponse, Es9ClientError>> + Send {
        self.call::<function::AuthenticateClient>(address, request)
    }

    /// `getBoundProfilePackage`.
    fn get_bound_profile_package(
        &self,
        address: &SmdpAddress,
        request: &GetBoundProfilePackageRequest,
    ) -> impl Future<Output = Result<GetBoundProfilePackageResponse, Es9ClientError>> + Send {
        self.call::<function::GetBoundProfilePackage>(address, request)
    }

    /// `handleNotification`: `Ok` once the SM-DP+ acknowledged it.
    fn handle_notification(
        &self,
        address: &SmdpAddress,
        request: &HandleNotificationRequest,
    ) -> impl Future<Output = Result<(), Es9ClientError>> + Send {
        self.call::<function::HandleNotification>(address, request)
    }

    /// `cancelSession`.
    fn cancel_session(
        &self,
        address: &SmdpAddress,
        request: &CancelSessionRequest,
    ) -> impl Future<Output = Result<CancelSessionResponse, Es9ClientError>> + Send {
        self.call::<function::CancelSession>(address, request)
    }
}

/// One ES9+ function: its name (the last path segment of its URL), its
/// request and response, and how its HTTPS answer is read. Implemented by
/// the five types of [`function`].
pub trait Es9Function: Send + Sync + 'static {
    /// The function's name, e.g. `initiateAuthentication`.
    const NAME: &'static str;
    /// The JSON request body.
    type Request: Serialize + Send + Sync + 'static;
    /// What a successful call gives.
    type Response: Send + 'static;

    /// Reads an HTTP answer (status and body) of this function.
    fn decode(status: u16, body: &[u8]) -> Result<Self::Response, Es9ClientError>;

    /// Runs the function on an in-process SM-DP+.
    #[cfg(feature = "inprocess")]
    fn serve<S: ferrosim_smdp::store::Store>(
        smdp: &ferrosim_smdp::Smdp<S>,
        request: &Self::Request,
        now: ferrosim_smdp::time::Timestamp,
    ) -> impl Future<Output = Result<Self::Response, ferrosim_smdp::Es9Error>> + Send;
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

/// Interprets an ES9+ answer: a `Failed` header becomes
/// [`Es9ClientError::Failed`] whatever the HTTP status; otherwise HTTP 200
/// with the full response structure is required.
pub fn decode_answer<Resp: DeserializeOwned>(
    function: &'static str,
    status: u16,
    body: &[u8],
) -> Result<Resp, Es9ClientError> {
    match read_answer::<Resp>(body) {
        Answer::Failed(data) => Err(Es9ClientError::Failed {
            function,
            subject_code: data.subject_code,
            reason_code: data.reason_code,
            message: data.message,
        }),
        _ if status != 200 => Err(Es9ClientError::HttpStatus { function, status }),
        Answer::Executed(output) => Ok(output),
        Answer::Malformed(reason) => Err(Es9ClientError::BadResponse { function, reason }),
    }
}

/// The ES9+ functions, as [`Es9Function`]s, and their names as they appear
/// in the URL path.
pub mod function {
    use ferrosim_asn1::json::HeaderOnly;
    use ferrosim_asn1::json::es9::{
        AuthenticateClientRequest, AuthenticateClientResponse, CancelSessionRequest,
        CancelSessionResponse, GetBoundProfilePackageRequest, GetBoundProfilePackageResponse,
        HandleNotificationRequest, InitiateAuthenticationRequest, InitiateAuthenticationResponse,
    };

    use super::{Es9ClientError, Es9Function, decode_answer};

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

    /// Declares a function whose answer is a JSON body with a header.
    macro_rules! json_function {
        ($(#[$doc:meta])* $name:ident, $const:ident, $req:ty, $resp:ty, $serve:ident) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Es9Function for $name {
                const NAME: &'static str = $const;
                type Request = $req;
                type Response = $resp;

                /// An executed answer with HTTP 200 (every answer of a
                /// download that goes well) is read in one pass, straight
                /// into the response type; anything else (a failure, a body
                /// that is not the function's output) goes through
                /// [`decode_answer`] for its status code or the reason.
                fn decode(status: u16, body: &[u8]) -> Result<$resp, Es9ClientError> {
                    if status == 200
                        && let Ok(answer) = serde_json::from_slice::<$resp>(body)
                        && answer.header.function_execution_status.is_success()
                    {
                        return Ok(answer);
                    }
                    decode_answer(Self::NAME, status, body)
                }

                #[cfg(feature = "inprocess")]
                fn serve<S: ferrosim_smdp::store::Store>(
                    smdp: &ferrosim_smdp::Smdp<S>,
                    request: &$req,
                    now: ferrosim_smdp::time::Timestamp,
                ) -> impl Future<Output = Result<$resp, ferrosim_smdp::Es9Error>> + Send {
                    smdp.$serve(request, now)
                }
            }
        };
    }

    json_function!(
        /// `initiateAuthentication`.
        InitiateAuthentication,
        INITIATE_AUTHENTICATION,
        InitiateAuthenticationRequest,
        InitiateAuthenticationResponse,
        initiate_authentication
    );
    json_function!(
        /// `authenticateClient`.
        AuthenticateClient,
        AUTHENTICATE_CLIENT,
        AuthenticateClientRequest,
        AuthenticateClientResponse,
        authenticate_client
    );
    json_function!(
        /// `getBoundProfilePackage`.
        GetBoundProfilePackage,
        GET_BOUND_PROFILE_PACKAGE,
        GetBoundProfilePackageRequest,
        GetBoundProfilePackageResponse,
        get_bound_profile_package
    );
    json_function!(
        /// `cancelSession`.
        CancelSession,
        CANCEL_SESSION,
        CancelSessionRequest,
        CancelSessionResponse,
        cancel_session
    );

    /// `handleNotification`: answered with 204 and no body.
    #[derive(Debug, Clone, Copy)]
    pub struct HandleNotification;

    impl Es9Function for HandleNotification {
        const NAME: &'static str = HANDLE_NOTIFICATION;
        type Request = HandleNotificationRequest;
        type Response = ();

        fn decode(status: u16, body: &[u8]) -> Result<(), Es9ClientError> {
            match status {
                204 => Ok(()),
                // Some servers answer 200 with a header: accept a success, report a failure.
                _ => decode_answer::<HeaderOnly>(Self::NAME, status, body).map(drop),
            }
        }

        #[cfg(feature = "inprocess")]
        async fn serve<S: ferrosim_smdp::store::Store>(
            smdp: &ferrosim_smdp::Smdp<S>,
            request: &HandleNotificationRequest,
            now: ferrosim_smdp::time::Timestamp,
        ) -> Result<(), ferrosim_smdp::Es9Error> {
            // Recorded or dropped, the LPA's answer is the same: done.
            smdp.handle_notification(request, now).await.map(|_| ())
        }
    }
}
