//! ES9+ calls as values: what a sans-IO state machine asks its driver to
//! send ([`Es9Call`]), and the answer the driver hands back
//! ([`Es9Response`]). [`Es9Request::send`] makes the call over any
//! [`Es9Client`]; it only awaits the client, so it runs on any executor.

use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, AuthenticateClientResponse, CancelSessionRequest,
    CancelSessionResponse, GetBoundProfilePackageRequest, GetBoundProfilePackageResponse,
    HandleNotificationRequest, InitiateAuthenticationRequest, InitiateAuthenticationResponse,
};

use super::{Es9Client, Es9ClientError, function};
use crate::activation_code::SmdpAddress;

/// An ES9+ call a state machine wants made. Its answer goes back with the
/// same `id`, so an answer to an abandoned call (one that timed out) is
/// recognised and dropped.
#[derive(Debug, Clone)]
pub struct Es9Call {
    /// Identifies the call within its machine.
    pub id: u64,
    /// The SM-DP+ to call.
    pub address: SmdpAddress,
    /// The function and its request.
    pub request: Es9Request,
}

/// An ES9+ function with its request.
#[derive(Debug, Clone)]
pub enum Es9Request {
    /// `initiateAuthentication`.
    InitiateAuthentication(InitiateAuthenticationRequest),
    /// `authenticateClient`.
    AuthenticateClient(AuthenticateClientRequest),
    /// `getBoundProfilePackage`.
    GetBoundProfilePackage(GetBoundProfilePackageRequest),
    /// `handleNotification`.
    HandleNotification(HandleNotificationRequest),
    /// `cancelSession`.
    CancelSession(CancelSessionRequest),
}

/// The outcome of an ES9+ call, by function.
#[derive(Debug)]
pub enum Es9Response {
    /// `initiateAuthentication`.
    InitiateAuthentication(Result<InitiateAuthenticationResponse, Es9ClientError>),
    /// `authenticateClient`.
    AuthenticateClient(Result<AuthenticateClientResponse, Es9ClientError>),
    /// `getBoundProfilePackage`.
    GetBoundProfilePackage(Result<GetBoundProfilePackageResponse, Es9ClientError>),
    /// `handleNotification`.
    HandleNotification(Result<(), Es9ClientError>),
    /// `cancelSession`.
    CancelSession(Result<CancelSessionResponse, Es9ClientError>),
}

impl Es9Request {
    /// The function's name, e.g. `initiateAuthentication`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InitiateAuthentication(_) => function::INITIATE_AUTHENTICATION,
            Self::AuthenticateClient(_) => function::AUTHENTICATE_CLIENT,
            Self::GetBoundProfilePackage(_) => function::GET_BOUND_PROFILE_PACKAGE,
            Self::HandleNotification(_) => function::HANDLE_NOTIFICATION,
            Self::CancelSession(_) => function::CANCEL_SESSION,
        }
    }

    /// Makes the call with `client`.
    pub async fn send<C: Es9Client>(&self, client: &C, address: &SmdpAddress) -> Es9Response {
        match self {
            Self::InitiateAuthentication(r) => Es9Response::InitiateAuthentication(
                client.initiate_authentication(address, r).await,
            ),
            Self::AuthenticateClient(r) => {
                Es9Response::AuthenticateClient(client.authenticate_client(address, r).await)
            }
            Self::GetBoundProfilePackage(r) => Es9Response::GetBoundProfilePackage(
                client.get_bound_profile_package(address, r).await,
            ),
            Self::HandleNotification(r) => {
                Es9Response::HandleNotification(client.handle_notification(address, r).await)
            }
            Self::CancelSession(r) => {
                Es9Response::CancelSession(client.cancel_session(address, r).await)
            }
        }
    }

    /// The response of this function failing with `error` (a driver that
    /// could not make the call answers with it).
    pub fn failed(&self, error: Es9ClientError) -> Es9Response {
        match self {
            Self::InitiateAuthentication(_) => Es9Response::InitiateAuthentication(Err(error)),
            Self::AuthenticateClient(_) => Es9Response::AuthenticateClient(Err(error)),
            Self::GetBoundProfilePackage(_) => Es9Response::GetBoundProfilePackage(Err(error)),
            Self::HandleNotification(_) => Es9Response::HandleNotification(Err(error)),
            Self::CancelSession(_) => Es9Response::CancelSession(Err(error)),
        }
    }
}

impl Es9Response {
    /// The function answered, e.g. `initiateAuthentication`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InitiateAuthentication(_) => function::INITIATE_AUTHENTICATION,
            Self::AuthenticateClient(_) => function::AUTHENTICATE_CLIENT,
            Self::GetBoundProfilePackage(_) => function::GET_BOUND_PROFILE_PACKAGE,
            Self::HandleNotification(_) => function::HANDLE_NOTIFICATION,
            Self::CancelSession(_) => function::CANCEL_SESSION,
        }
    }

    /// The failure, if the call failed.
    pub fn error(&self) -> Option<&Es9ClientError> {
        match self {
            Self::InitiateAuthentication(r) => r.as_ref().err(),
            Self::AuthenticateClient(r) => r.as_ref().err(),
            Self::GetBoundProfilePackage(r) => r.as_ref().err(),
            Self::HandleNotification(r) => r.as_ref().err(),
            Self::CancelSession(r) => r.as_ref().err(),
        }
    }
}
