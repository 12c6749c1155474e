//! An eIM in the same process as the IPA: each ESipa message goes to
//! [`ferrosim_eim::Eim::handle`] as the ASN.1 binding's bytes and comes
//! back as the ASN.1 binding's answer, without HTTP (tests, simulations,
//! `ferrosim bench --eim` in memory). Refusals of the eIM become the
//! function's error answer, as `ferrosim serve` gives them.

use ferrosim_eim::relay::Es9Relay;
use ferrosim_eim::store::EimStore;
use ferrosim_eim::{Eim, EsipaAnswer, EsipaReply};
use ferrosim_ids::Timestamp;
use ferrosim_lpa::es9::{Es9Request, Es9Response};

use super::EsipaClient;
use crate::esipa::{EimReply, EsipaError, EsipaRequest, reply_from_asn1};
use crate::relay;

/// The eIM `eim` relaying indirect downloads through `relay`.
#[derive(Debug, Clone)]
pub struct InProcessEim<S, R> {
    /// The eIM.
    pub eim: Eim<S>,
    /// Its ES9+ relay.
    pub relay: R,
}

impl<S: EimStore, R: Es9Relay> InProcessEim<S, R> {
    /// Serves `der` and returns (HTTP-like status, body).
    async fn exchange(&self, der: &[u8]) -> (u16, Vec<u8>) {
        let reply = match self.eim.handle(der, &self.relay, Timestamp::now()).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::info!(error = %e, "in-process eIM refused a message");
                EsipaReply::error_for(der)
            }
        };
        match reply.into_asn1() {
            Ok(EsipaAnswer::Message { der, .. }) => (200, der),
            Ok(EsipaAnswer::NoContent) => (204, Vec::new()),
            Err(e) => {
                tracing::error!(error = %e, "in-process eIM answer not encodable");
                (500, Vec::new())
            }
        }
    }
}

impl<S: EimStore, R: Es9Relay> EsipaClient for InProcessEim<S, R> {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        let (status, body) = self.exchange(&request.to_der()?).await;
        reply_from_asn1(request.function(), status, &body)
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        match relay::request_to_der(request) {
            Ok(der) => {
                let (status, body) = self.exchange(&der).await;
                relay::response_from_der(request, status, &body)
            }
            Err(e) => request.failed(e),
        }
    }
}
