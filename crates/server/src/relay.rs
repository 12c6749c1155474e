//! The eIM's ES9+ relay driver (indirect profile download): the calls
//! [`ferrosim_eim::relay`] decides on, made to ferrosim's own SM-DP+ in
//! process when the same instance runs it (the address is its own), and to
//! any other SM-DP+ over HTTPS with the LPA's ES9+ client.

use ferrosim_eim::relay::{Es9Relay, Es9Request, Es9Response, RelayFailure, RelayRequest};
use ferrosim_lpa::SmdpAddress;
use ferrosim_lpa::es9::https::HttpsEs9Client;
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::es9::{Es9Client, Es9ClientError};
use ferrosim_smdp::store::Store;

/// Relays to the local SM-DP+ and, for other addresses, over HTTPS.
pub struct SmdpRelay<S> {
    local: Option<InProcessEs9<S>>,
    remote: Option<HttpsEs9Client>,
}

impl<S> std::fmt::Debug for SmdpRelay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmdpRelay")
            .field("local", &self.local.is_some())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl<S: Store> SmdpRelay<S> {
    /// A relay to `local` (the instance's own SM-DP+) and, with `remote`,
    /// to any other SM-DP+ over HTTPS.
    pub fn new(local: Option<ferrosim_smdp::Smdp<S>>, remote: Option<HttpsEs9Client>) -> Self {
        Self {
            local: local.map(InProcessEs9::new),
            remote,
        }
    }

    async fn call_on<C: Es9Client>(
        client: &C,
        address: &SmdpAddress,
        request: &Es9Request,
    ) -> Result<Es9Response, Es9ClientError> {
        Ok(match request {
            Es9Request::InitiateAuthentication(r) => Es9Response::InitiateAuthentication(
                client.initiate_authentication(address, r).await?,
            ),
            Es9Request::AuthenticateClient(r) => {
                Es9Response::AuthenticateClient(client.authenticate_client(address, r).await?)
            }
            Es9Request::GetBoundProfilePackage(r) => Es9Response::GetBoundProfilePackage(
                client.get_bound_profile_package(address, r).await?,
            ),
            Es9Request::CancelSession(r) => {
                Es9Response::CancelSession(client.cancel_session(address, r).await?)
            }
            Es9Request::HandleNotification(r) => {
                client.handle_notification(address, r).await?;
                Es9Response::HandleNotification
            }
        })
    }
}

fn failure(e: Es9ClientError) -> RelayFailure {
    match e {
        Es9ClientError::Failed {
            subject_code,
            reason_code,
            message,
            ..
        } => RelayFailure::Failed {
            subject_code,
            reason_code,
            message,
        },
        other => RelayFailure::Unreachable(other.to_string()),
    }
}

impl<S: Store> Es9Relay for SmdpRelay<S> {
    async fn call(&self, request: &RelayRequest) -> Result<Es9Response, RelayFailure> {
        let address = SmdpAddress::new(&request.address).map_err(|e| {
            RelayFailure::Unreachable(format!("invalid SM-DP+ address `{}`: {e}", request.address))
        })?;
        if let Some(local) = &self.local {
            match Self::call_on(local, &address, &request.request).await {
                Err(Es9ClientError::UnknownAddress(_)) => {}
                other => return other.map_err(failure),
            }
        }
        match &self.remote {
            Some(remote) => Self::call_on(remote, &address, &request.request)
                .await
                .map_err(failure),
            None => Err(RelayFailure::Unreachable(format!(
                "no relay to other SM-DP+s is configured (asked for {})",
                request.address
            ))),
        }
    }
}
