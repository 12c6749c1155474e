//! ES9+ `cancelSession` (SGP.22 5.6.5).

use ferrosim_asn1::json::ResponseHeader;
use ferrosim_asn1::json::es9::{CancelSessionRequest, CancelSessionResponse};
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_crypto::ecdsa::VerifyingKey;
use tracing::info;

use super::{Es9Error, bad_der, parse_tid};
use crate::Smdp;
use crate::order::CancelSessionReason;
use crate::session::SessionState;
use crate::store::{ProfileSelector, Store};
use crate::time::Timestamp;

impl<S: Store> Smdp<S> {
    /// Ends a session at the device's request, after checking the eUICC's
    /// signature over the cancellation. Postponed, timed-out and undefined
    /// (e.g. lost connection) cancellations leave the order open for another
    /// attempt, also after its package was issued (by the same eUICC only);
    /// other reasons end the order in `error`.
    pub async fn cancel_session(
        &self,
        req: &CancelSessionRequest,
        now: Timestamp,
    ) -> Result<CancelSessionResponse, Es9Error> {
        let tid = parse_tid(&req.transaction_id)?;
        let bytes = &req.cancel_session_response.0;
        let response: rsp::CancelSessionResponse =
            decode_der(bytes).map_err(bad_der("cancelSessionResponse"))?;
        let session = self
            .store
            .session(&tid)
            .await?
            .filter(|s| s.is_live(now) && !matches!(s.state, SessionState::Completed))
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))?;
        let ok = match response {
            rsp::CancelSessionResponse::cancelSessionResponseOk(ok) => ok,
            rsp::CancelSessionResponse::cancelSessionResponseError(code) => {
                return Err(Es9Error::EuiccError {
                    message: "CancelSessionResponse",
                    code: i64::try_from(&code).unwrap_or(-1),
                });
            }
            _ => return Err(Es9Error::BadRequest("unknown CancelSessionResponse".into())),
        };
        let signed_part = &ok.euicc_cancel_session_signed;
        if signed_part.transaction_id.0.as_ref() != tid.as_bytes() {
            return Err(Es9Error::UnknownTransaction(tid.to_hex()));
        }
        if !self.config.is_our_oid(&signed_part.smdp_oid) {
            return Err(Es9Error::OidMismatch);
        }
        // Before authenticateClient the eUICC is not known yet: nothing to verify
        // with, and no order is bound.
        if let Some(public_key) = session.euicc_public_key.as_deref() {
            let parts = cancel_signed_part(bytes)?;
            VerifyingKey::from_sec1(public_key)
                .and_then(|k| k.verify_raw(parts.signed, parts.signature))
                .map_err(|_| Es9Error::EuiccSignature("euiccCancelSessionSigned"))?;
        }
        let reason = CancelSessionReason::from_asn1(&signed_part.reason);
        let selector = session
            .iccid
            .clone()
            .map(|i| ProfileSelector::Iccid(i, None));
        self.store
            .update_session(&tid, selector.as_ref(), now, move |s, p, events| {
                s.state = SessionState::Cancelled;
                s.updated_at = now;
                if let Some(p) = p {
                    // A superseded session may not touch the order: ignore its error.
                    let _ =
                        p.cancel_session(&s.transaction_id, s.eid.as_ref(), reason, now, events);
                }
            })
            .await?;
        info!(transaction_id = %tid, ?reason, "session cancelled by the device");
        Ok(CancelSessionResponse {
            header: ResponseHeader::success(),
            transaction_id: Some(tid.to_hex()),
        })
    }
}

/// euiccCancelSessionSigned and its signature, as received.
fn cancel_signed_part(bytes: &[u8]) -> Result<signed::SignedPart<'_>, Es9Error> {
    use ferrosim_asn1::tlv::Tlv;
    let bad = |e: String| Es9Error::BadRequest(format!("cancelSessionResponse: {e}"));
    let outer = Tlv::parse_exact(bytes).map_err(|e| bad(e.to_string()))?;
    let ok = outer.require(0xA0).map_err(|e| bad(e.to_string()))?;
    let tbs = ok.require(0x30).map_err(|e| bad(e.to_string()))?;
    let sig = ok.require(0x5F37).map_err(|e| bad(e.to_string()))?;
    signed::from_parts(tbs.raw, sig.raw).map_err(|e| bad(e.to_string()))
}
