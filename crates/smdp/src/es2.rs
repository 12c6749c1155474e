//! ES2+: the functions an operator's back office calls (SGP.22 5.3), as
//! methods of [`Smdp`], plus operator authentication and the idempotency of
//! calls by `functionCallIdentifier`.
//!
//! Operators authenticate with a bearer token per operator (see
//! [`Smdp::authenticate_operator`]); the `functionRequesterIdentifier` of each
//! call must name the same operator, and an operator only ever sees its own
//! profiles.

use ferrosim_asn1::json::es2::{
    CancelOrderRequest, ConfirmOrderRequest, ConfirmOrderResponse, DownloadOrderRequest,
    DownloadOrderResponse, ReleaseProfileRequest, RequestHeader,
};
use ferrosim_asn1::json::{HeaderOnly, ResponseHeader, StatusCodeData};
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::info;

use crate::Smdp;
use crate::ids::MatchingId;
use crate::order::{Confirmation, ConfirmationCode, FinalProfileStatus, OrderError};
use crate::status::StatusCode;
use crate::store::{CallSlot, Operator, ProfileSelector, Store, StoreError};
use crate::time::Timestamp;

/// How long an ES2+ call may stay "in progress" before a retry takes it over
/// (its instance died mid-call).
const STALE_CALL_MS: i64 = 60_000;

/// Why an ES2+ function failed.
#[derive(Debug, Error)]
pub enum Es2Error {
    /// Missing or unknown bearer token, or a requester id of another operator.
    #[error("function requester not allowed")]
    NotAllowed,
    /// A mandatory field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has the wrong shape.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The EID is not a valid EID.
    #[error("invalid EID")]
    InvalidEid,
    /// No such profile for this operator.
    #[error("ICCID unknown")]
    UnknownIccid,
    /// No such profile type for this operator.
    #[error("profile type unknown")]
    UnknownProfileType,
    /// No available profile of the type is left.
    #[error("no available profile of this type")]
    Exhausted,
    /// The matching id is used by another order.
    #[error("matching id already in use")]
    MatchingIdInUse,
    /// The order rules forbid the call.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// The functionCallIdentifier was used for another request.
    #[error("functionCallIdentifier reused for another request")]
    CallIdReused,
    /// The same call is executing.
    #[error("functionCallIdentifier is being executed")]
    CallInProgress,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Es2Error {
    /// The SGP.22 status code this failure is reported with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotAllowed => StatusCode::FUNCTION_REQUESTER_NOT_ALLOWED,
            Self::Missing(_) => StatusCode::MANDATORY_ELEMENT_MISSING,
            Self::Invalid(_) => StatusCode::INVALID_REQUEST_FORMAT,
            Self::InvalidEid => StatusCode::EID_INVALID,
            Self::UnknownIccid => StatusCode::ICCID_UNKNOWN,
            Self::UnknownProfileType => StatusCode::PROFILE_TYPE_UNKNOWN,
            Self::Exhausted => StatusCode::PROFILE_TYPE_EXHAUSTED,
            Self::MatchingIdInUse => StatusCode::MATCHING_ID_IN_USE,
            Self::Order(e) => e.status(),
            Self::CallIdReused => StatusCode::FUNCTION_CALL_ID_REUSED,
            Self::CallInProgress => StatusCode::FUNCTION_CALL_IN_PROGRESS,
            Self::Store(_) => StatusCode::EXECUTION_ERROR,
        }
    }

    /// The JSON `statusCodeData` of this failure.
    pub fn status_code_data(&self) -> StatusCodeData {
        self.status().to_data(match self {
            Self::Store(_) => None,
            other => Some(other.to_string()),
        })
    }
}

/// The JSON answer of an ES2+ function, for [`Smdp::idempotent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAnswer {
    /// The function ran (successfully or not): replay this answer.
    Final(String),
    /// It could not run because of a failure on our side: do not replay.
    Transient(String),
}

/// SHA-256 of an operator's API token, the form kept in the store.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl<S: Store> Smdp<S> {
    /// The operator a bearer token belongs to.
    pub async fn authenticate_operator(&self, token: &str) -> Result<Operator, Es2Error> {
        self.store
            .operator_by_token(&token_hash(token))
            .await?
            .ok_or(Es2Error::NotAllowed)
    }

    /// Runs an ES2+ function at most once per `functionCallIdentifier`: a
    /// repeat of the same request returns the stored answer; the same id with
    /// another request is refused. `run` produces the JSON answer (success or
    /// failure); a [`CallAnswer::Final`] one is stored for replays, a
    /// [`CallAnswer::Transient`] one (our database failed) is not, so a retry
    /// executes again.
    pub async fn idempotent<F, Fut>(
        &self,
        operator: &Operator,
        header: &RequestHeader,
        function: &str,
        request_body: &[u8],
        now: Timestamp,
        run: F,
    ) -> Result<String, Es2Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = CallAnswer>,
    {
        if header.function_requester_identifier != operator.id.as_str() {
            return Err(Es2Error::NotAllowed);
        }
        let call_id = header.function_call_identifier.trim();
        if call_id.is_empty() || call_id.len() > 128 {
            return Err(Es2Error::Invalid("functionCallIdentifier"));
        }
        let hash: [u8; 32] = Sha256::digest(request_body).into();
        match self
            .store
            .begin_call(&operator.id, call_id, function, &hash, now, STALE_CALL_MS)
            .await?
        {
            CallSlot::Fresh => {}
            CallSlot::Replay(answer) => return Ok(answer),
            CallSlot::InProgress => return Err(Es2Error::CallInProgress),
            CallSlot::Mismatch => return Err(Es2Error::CallIdReused),
        }
        match run().await {
            CallAnswer::Final(answer) => {
                self.store
                    .finish_call(&operator.id, call_id, &answer)
                    .await?;
                Ok(answer)
            }
            CallAnswer::Transient(answer) => {
                self.store.abandon_call(&operator.id, call_id).await?;
                Ok(answer)
            }
        }
    }

    /// `downloadOrder`: reserves a profile (by ICCID, or any of a type),
    /// optionally linked to an EID.
    pub async fn download_order(
        &self,
        operator: &Operator,
        req: &DownloadOrderRequest,
        now: Timestamp,
    ) -> Result<DownloadOrderResponse, Es2Error> {
        let eid = parse_eid(req.eid.as_deref())?;
        let selector = match (req.iccid.as_deref(), req.profile_type.as_deref()) {
            (Some(iccid), _) => {
                ProfileSelector::Iccid(parse_iccid(iccid)?, Some(operator.id.clone()))
            }
            (None, Some(t)) => {
                if self.store.profile_type(&operator.id, t).await?.is_none() {
                    return Err(Es2Error::UnknownProfileType);
                }
                ProfileSelector::FirstAvailable {
                    operator: operator.id.clone(),
                    profile_type: t.to_owned(),
                }
            }
            (None, None) => return Err(Es2Error::Missing("iccid or profileType")),
        };
        let wanted_type = req.profile_type.clone();
        let policy = self.config.policy;
        let iccid = self
            .store
            .update_profile(&selector, now, move |p, _| {
                if let Some(t) = &wanted_type
                    && &p.profile_type != t
                {
                    return Err(Es2Error::Invalid(
                        "profileType does not match the ICCID's type",
                    ));
                }
                p.allocate(eid, now, &policy)?;
                Ok(p.iccid.clone())
            })
            .await?
            .ok_or(match selector {
                ProfileSelector::FirstAvailable { .. } => Es2Error::Exhausted,
                _ => Es2Error::UnknownIccid,
            })??;
        info!(operator = %operator.id, iccid = %iccid.as_str(), "order allocated");
        Ok(DownloadOrderResponse {
            header: ResponseHeader::success(),
            iccid: iccid.as_str().to_owned(),
        })
    }

    /// `confirmOrder`: sets the matching id (generated when absent) and the
    /// confirmation code, and confirms or releases the order.
    pub async fn confirm_order(
        &self,
        operator: &Operator,
        req: &ConfirmOrderRequest,
        now: Timestamp,
    ) -> Result<ConfirmOrderResponse, Es2Error> {
        let iccid = parse_iccid(&req.iccid)?;
        let eid = parse_eid(req.eid.as_deref())?;
        let matching_id = match req
            .matching_id
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            Some(m) => MatchingId::new(m).map_err(|_| Es2Error::Invalid("matchingId"))?,
            None => MatchingId::generate(&mut rand::rng()),
        };
        let confirmation_code = match req.confirmation_code.as_deref() {
            Some("") => return Err(Es2Error::Invalid("confirmationCode")),
            Some(c) => Some(ConfirmationCode::from_code(c)),
            None => None,
        };
        let confirmation = Confirmation {
            eid,
            matching_id,
            confirmation_code,
            smds_address: req.smds_address.clone(),
            release: req.release_flag,
        };
        let selector = ProfileSelector::Iccid(iccid, Some(operator.id.clone()));
        let outcome = self
            .store
            .update_profile(&selector, now, move |p, _| {
                p.confirm(confirmation, now)?;
                let order = p.order.as_ref();
                Ok::<_, Es2Error>((
                    order.and_then(|o| o.eid),
                    order.and_then(|o| o.matching_id.clone()),
                ))
            })
            .await;
        let (eid, matching_id) = match outcome {
            Err(StoreError::Conflict(_)) => return Err(Es2Error::MatchingIdInUse),
            other => other?.ok_or(Es2Error::UnknownIccid)??,
        };
        let matching_id = matching_id.ok_or(Es2Error::Invalid("matchingId"))?;
        Ok(ConfirmOrderResponse {
            header: ResponseHeader::success(),
            eid: eid.map(|e| e.to_string()),
            matching_id: matching_id.to_string(),
            smdp_address: Some(self.config.address.clone()),
        })
    }

    /// `cancelOrder`: ends the order; the profile becomes available again or
    /// unavailable for good.
    pub async fn cancel_order(
        &self,
        operator: &Operator,
        req: &CancelOrderRequest,
        now: Timestamp,
    ) -> Result<HeaderOnly, Es2Error> {
        let iccid = parse_iccid(&req.iccid)?;
        let eid = parse_eid(req.eid.as_deref())?;
        let matching_id = req
            .matching_id
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| MatchingId::new(m).map_err(|_| Es2Error::Invalid("matchingId")))
            .transpose()?;
        let status = match req.final_profile_status_indicator.as_str() {
            "Available" => FinalProfileStatus::Available,
            "Unavailable" => FinalProfileStatus::Unavailable,
            _ => return Err(Es2Error::Invalid("finalProfileStatusIndicator")),
        };
        let selector = ProfileSelector::Iccid(iccid, Some(operator.id.clone()));
        self.store
            .update_profile(&selector, now, move |p, _| {
                p.cancel(status, eid.as_ref(), matching_id.as_ref(), now)
            })
            .await?
            .ok_or(Es2Error::UnknownIccid)??;
        Ok(HeaderOnly {
            header: ResponseHeader::success(),
        })
    }

    /// `releaseProfile`: a confirmed order becomes downloadable.
    pub async fn release_profile(
        &self,
        operator: &Operator,
        req: &ReleaseProfileRequest,
        now: Timestamp,
    ) -> Result<HeaderOnly, Es2Error> {
        let iccid = parse_iccid(&req.iccid)?;
        let selector = ProfileSelector::Iccid(iccid, Some(operator.id.clone()));
        self.store
            .update_profile(&selector, now, move |p, _| p.release(now))
            .await?
            .ok_or(Es2Error::UnknownIccid)??;
        Ok(HeaderOnly {
            header: ResponseHeader::success(),
        })
    }
}

fn parse_iccid(s: &str) -> Result<Iccid, Es2Error> {
    Iccid::new(s.trim()).map_err(|_| Es2Error::Invalid("iccid"))
}

fn parse_eid(s: Option<&str>) -> Result<Option<Eid>, Es2Error> {
    s.map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| Eid::parse(e).map_err(|_| Es2Error::InvalidEid))
        .transpose()
}
