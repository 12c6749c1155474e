//! ES9+ `cancelSession` (SGP.22 5.6.5).

use ferrosim_asn1::json::ResponseHeader;
use ferrosim_asn1::json::es9::{CancelSessionRequest, CancelSessionResponse};
use ferrosim_asn1::{decode_der, rsp, signed};
use tracing::info;

use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::config::SmdpConfig;
use crate::order::{CancelSessionReason, ProfileRecord};
use crate::session::{SessionRecord, SessionState};
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{
    Changes, ProfileSelector, ProfileWrite, SessionWrite, Store, StoreError, Versioned,
};
use crate::time::Timestamp;

/// The step: ends a session at the device's request, after checking the
/// eUICC's signature over the cancellation. Postponed, timed-out and
/// undefined (e.g. lost connection) cancellations leave the order open for
/// another attempt, also after its package was issued (by the same eUICC
/// only); other reasons end the order in `error`. `profile` is the profile
/// bound to the session, if any.
pub fn cancel_session(
    cfg: &SmdpConfig,
    req: &CancelSessionRequest,
    session: Option<Versioned<SessionRecord>>,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<CancelSessionResponse, Es9Error> {
    decide(cfg, req, session, profile, now).unwrap_or_else(Outcome::refuse)
}

fn decide(
    cfg: &SmdpConfig,
    req: &CancelSessionRequest,
    session: Option<Versioned<SessionRecord>>,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Result<Outcome<CancelSessionResponse, Es9Error>, Es9Error> {
    let tid = req.transaction_id.clone();
    let bytes = &req.cancel_session_response.0;
    let response: rsp::CancelSessionResponse =
        decode_der(bytes).map_err(bad_der("cancelSessionResponse"))?;
    let unknown = || Es9Error::UnknownTransaction(tid.to_hex());
    let mut session = session
        .filter(|s| {
            s.record.transaction_id == tid
                && s.record.is_live(now)
                && s.record.state() != SessionState::Completed
        })
        .ok_or_else(unknown)?;
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
        return Err(unknown());
    }
    if !cfg.is_our_oid(&signed_part.smdp_oid) {
        return Err(Es9Error::OidMismatch);
    }
    // Before authenticateClient the eUICC is not known yet: nothing to verify
    // with, and no order is bound.
    let binding = session.record.binding().cloned();
    if let Some(b) = &binding {
        let parts = cancel_signed_part(bytes)?;
        b.euicc_public_key
            .verifying_key()
            .and_then(|k| k.verify_raw(parts.signed, parts.signature))
            .map_err(|_| Es9Error::EuiccSignature("euiccCancelSessionSigned"))?;
    }
    let reason = CancelSessionReason::from_asn1(&signed_part.reason);
    session.record.cancel(now);
    let mut changes = Changes {
        session: Some(SessionWrite::Update {
            expected: session.version,
            record: session.record,
        }),
        ..Changes::default()
    };
    if let (Some(b), Some(read)) = (
        &binding,
        profile.filter(|p| binding.as_ref().is_some_and(|b| b.iccid == p.record.iccid)),
    ) {
        let mut p = read.record.clone();
        let mut events = Vec::new();
        // A superseded session may not touch the order: then it stays as it is.
        if p.cancel_session(&tid, Some(&b.eid), reason, now, &mut events)
            .is_ok()
        {
            changes.profile = Some(ProfileWrite::new(read, p));
            changes.events = events;
        }
    }
    Ok(Outcome::new(
        changes,
        Ok(CancelSessionResponse {
            header: ResponseHeader::success(),
            transaction_id: Some(tid),
        }),
    ))
}

impl<S: Store> Smdp<S> {
    /// Ends a session at the device's request: loads the session and its
    /// bound profile, runs [`cancel_session`], commits.
    pub async fn cancel_session(
        &self,
        req: &CancelSessionRequest,
        now: Timestamp,
    ) -> Result<CancelSessionResponse, Es9Error> {
        let tid = req.transaction_id.clone();
        for _ in 0..ATTEMPTS {
            let session = self.store.session(&tid).await?;
            let profile = match session.as_ref().and_then(|s| s.record.binding()) {
                Some(b) => {
                    self.store
                        .find_profile(&ProfileSelector::Iccid(b.iccid.clone(), None))
                        .await?
                }
                None => None,
            };
            let outcome = cancel_session(&self.config, req, session, profile, now);
            if let Some(answer) = self.settle(outcome).await? {
                info!(transaction_id = %tid, "session cancelled by the device");
                return Ok(answer);
            }
        }
        Err(Es9Error::Store(StoreError::Stale))
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
