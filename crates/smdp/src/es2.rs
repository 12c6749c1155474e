//! ES2+: the functions an operator's back office calls (SGP.22 5.3), as pure
//! steps ([`download_order`], [`confirm_order`], [`cancel_order`],
//! [`release_profile`]: see [`crate::step`]) with their drivers on [`Smdp`],
//! plus operator authentication and the idempotency of calls by
//! `functionCallIdentifier`.
//!
//! Operators authenticate with a bearer token per operator (see
//! [`Smdp::authenticate_operator`]); the `functionRequesterIdentifier` of each
//! call must name the same operator, and an operator only ever sees its own
//! profiles.

use std::collections::HashMap;

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

use rand::{CryptoRng, RngExt};

use crate::Smdp;
use crate::ids::MatchingId;
use crate::order::{
    Confirmation, ConfirmationCode, FinalProfileStatus, OrderError, OrderPolicy, ProfileRecord,
};
use crate::status::StatusCode;
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{
    CallSlot, Changes, Operator, ProfileSelector, ProfileWrite, Store, StoreError, Versioned,
};
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
    /// The profile type has no such version (an order pinned to one).
    #[error("profile type version {0} unknown")]
    UnknownProfileTypeVersion(u32),
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
    /// `revokeProfile` refused the revocation.
    #[error(transparent)]
    EndOfLife(crate::end_of_life::EndOfLifeError),
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
            Self::UnknownProfileType | Self::UnknownProfileTypeVersion(_) => {
                StatusCode::PROFILE_TYPE_UNKNOWN
            }
            Self::Exhausted => StatusCode::PROFILE_TYPE_EXHAUSTED,
            Self::MatchingIdInUse => StatusCode::MATCHING_ID_IN_USE,
            Self::Order(e) => e.status(),
            Self::CallIdReused => StatusCode::FUNCTION_CALL_ID_REUSED,
            Self::CallInProgress => StatusCode::FUNCTION_CALL_IN_PROGRESS,
            Self::EndOfLife(e) => e.status(),
            Self::Store(_) => StatusCode::EXECUTION_ERROR,
        }
    }

    /// The JSON `statusCodeData` of this failure.
    pub fn status_code_data(&self) -> StatusCodeData {
        self.status().to_data(match self {
            // The cause is in the SM-DP+'s log; the operator learns that
            // nothing was done and that it may try again.
            Self::Store(_) => Some(STORE_FAILURE_MESSAGE.to_owned()),
            other => Some(other.to_string()),
        })
    }
}

/// The message of an ES2+ or ES9+ failure answer when the SM-DP+'s
/// database failed (the cause itself is logged, not sent).
pub const STORE_FAILURE_MESSAGE: &str =
    "the SM-DP+ could not use its database; nothing was changed, retry later";

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

    /// `downloadOrder`: loads the profile named by ICCID, or picks one of
    /// the first [`CANDIDATES`] available profiles of the type at random
    /// (so concurrent orders of one type rarely race for the same row), runs
    /// [`download_order`], commits. A lost race tries another candidate.
    pub async fn download_order(
        &self,
        operator: &Operator,
        req: &DownloadOrderRequest,
        now: Timestamp,
    ) -> Result<DownloadOrderResponse, Es2Error> {
        self.download_order_of_version(operator, req, None, now)
            .await
    }

    /// [`Smdp::download_order`] with the profile type's version the order
    /// is made with: `None` for the latest (what ES2+ does), or an earlier
    /// one the operator pins (an administrator's `order create
    /// --type-version`). A version the type does not have is
    /// [`Es2Error::UnknownProfileTypeVersion`].
    pub async fn download_order_of_version(
        &self,
        operator: &Operator,
        req: &DownloadOrderRequest,
        pinned: Option<u32>,
        now: Timestamp,
    ) -> Result<DownloadOrderResponse, Es2Error> {
        let (_, target) = parse_download_order(req)?;
        let policy = &self.config.policy;
        let (selector, attempts) = match target {
            OrderTarget::Iccid(iccid) => (
                Some(ProfileSelector::Iccid(iccid, Some(operator.id.clone()))),
                ATTEMPTS,
            ),
            OrderTarget::ProfileType(t) => {
                if self.store.profile_type(&operator.id, t).await?.is_none() {
                    return Err(Es2Error::UnknownProfileType);
                }
                if let Some(v) = pinned
                    && self
                        .store
                        .profile_type_version(&operator.id, t, v)
                        .await?
                        .is_none()
                {
                    return Err(Es2Error::UnknownProfileTypeVersion(v));
                }
                (None, ORDER_ATTEMPTS)
            }
        };
        // The order pins the latest version of its profile type (read once
        // per type and call; a version imported later goes to later orders).
        let mut latest: HashMap<String, Option<u32>> = HashMap::new();
        for _ in 0..attempts {
            let profile = match (&selector, req.profile_type.as_deref()) {
                (Some(selector), _) => self.store.find_profile(selector).await?,
                (None, Some(t)) => {
                    let mut candidates = self
                        .store
                        .available_profiles(&operator.id, t, CANDIDATES)
                        .await?;
                    match candidates.len() {
                        0 => None,
                        n => {
                            let pick = self.randomness.for_call().random_range(0..n);
                            Some(candidates.swap_remove(pick))
                        }
                    }
                }
                (None, None) => None,
            };
            let type_version = match &profile {
                Some(p) if pinned.is_some() => {
                    let v = pinned.unwrap_or_default();
                    if self
                        .store
                        .profile_type_version(&operator.id, &p.record.profile_type, v)
                        .await?
                        .is_none()
                    {
                        return Err(Es2Error::UnknownProfileTypeVersion(v));
                    }
                    Some(v)
                }
                Some(p) => match latest.get(&p.record.profile_type) {
                    Some(v) => *v,
                    None => {
                        let v = self
                            .store
                            .profile_type(&operator.id, &p.record.profile_type)
                            .await?
                            .map(|t| t.version);
                        latest.insert(p.record.profile_type.clone(), v);
                        v
                    }
                },
                None => None,
            };
            let outcome = download_order(policy, operator, req, profile, type_version, now);
            if let Some(answer) = self.settle(outcome).await? {
                info!(operator = %operator.id, iccid = %answer.iccid, "order allocated");
                return Ok(answer);
            }
        }
        Err(Es2Error::Store(StoreError::Stale))
    }

    /// `confirmOrder`: loads the profile, runs [`confirm_order`] (which
    /// generates a matching id when the operator sent none), commits.
    pub async fn confirm_order(
        &self,
        operator: &Operator,
        req: &ConfirmOrderRequest,
        now: Timestamp,
    ) -> Result<ConfirmOrderResponse, Es2Error> {
        let selector = ProfileSelector::Iccid(parse_iccid(&req.iccid)?, Some(operator.id.clone()));
        for _ in 0..ATTEMPTS {
            let profile = self.store.find_profile(&selector).await?;
            let outcome = confirm_order(
                &self.config.address,
                operator,
                req,
                profile,
                now,
                &mut self.randomness.for_call(),
            );
            match self.settle(outcome).await {
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) => continue,
                Err(Es2Error::Store(StoreError::Conflict(_))) => {
                    return Err(Es2Error::MatchingIdInUse);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Es2Error::Store(StoreError::Stale))
    }

    /// `cancelOrder`: loads the profile, runs [`cancel_order`], commits.
    pub async fn cancel_order(
        &self,
        operator: &Operator,
        req: &CancelOrderRequest,
        now: Timestamp,
    ) -> Result<HeaderOnly, Es2Error> {
        let selector = ProfileSelector::Iccid(parse_iccid(&req.iccid)?, Some(operator.id.clone()));
        for _ in 0..ATTEMPTS {
            let profile = self.store.find_profile(&selector).await?;
            if let Some(answer) = self
                .settle(cancel_order(operator, req, profile, now))
                .await?
            {
                return Ok(answer);
            }
        }
        Err(Es2Error::Store(StoreError::Stale))
    }

    /// `releaseProfile`: loads the profile, runs [`release_profile`], commits.
    pub async fn release_profile(
        &self,
        operator: &Operator,
        req: &ReleaseProfileRequest,
        now: Timestamp,
    ) -> Result<HeaderOnly, Es2Error> {
        let selector = ProfileSelector::Iccid(parse_iccid(&req.iccid)?, Some(operator.id.clone()));
        for _ in 0..ATTEMPTS {
            let profile = self.store.find_profile(&selector).await?;
            if let Some(answer) = self
                .settle(release_profile(operator, req, profile, now))
                .await?
            {
                return Ok(answer);
            }
        }
        Err(Es2Error::Store(StoreError::Stale))
    }
}

/// Available profiles a `downloadOrder` by type chooses from.
pub const CANDIDATES: u32 = 16;

/// Tries of a `downloadOrder` by type before it gives up on contention.
const ORDER_ATTEMPTS: usize = 16;

/// What a `downloadOrder` names.
enum OrderTarget<'a> {
    Iccid(Iccid),
    ProfileType(&'a str),
}

fn parse_download_order(
    req: &DownloadOrderRequest,
) -> Result<(Option<Eid>, OrderTarget<'_>), Es2Error> {
    let eid = parse_eid(req.eid.as_deref())?;
    let target = match (req.iccid.as_deref(), req.profile_type.as_deref()) {
        (Some(iccid), _) => OrderTarget::Iccid(parse_iccid(iccid)?),
        (None, Some(t)) => OrderTarget::ProfileType(t),
        (None, None) => return Err(Es2Error::Missing("iccid or profileType")),
    };
    Ok((eid, target))
}

/// The `downloadOrder` step: reserves `profile` (the one named by ICCID, or
/// the candidate of the type), optionally linked to an EID.
pub fn download_order(
    policy: &OrderPolicy,
    operator: &Operator,
    req: &DownloadOrderRequest,
    profile: Option<Versioned<ProfileRecord>>,
    type_version: Option<u32>,
    now: Timestamp,
) -> Outcome<DownloadOrderResponse, Es2Error> {
    let (eid, target) = match parse_download_order(req) {
        Ok(t) => t,
        Err(e) => return Outcome::refuse(e),
    };
    let (missing, named) = match &target {
        OrderTarget::Iccid(i) => (
            Es2Error::UnknownIccid,
            profile.filter(|p| p.record.iccid == *i),
        ),
        OrderTarget::ProfileType(t) => (
            Es2Error::Exhausted,
            profile.filter(|p| p.record.profile_type == *t),
        ),
    };
    let Some(read) = named.filter(|p| p.record.operator == operator.id) else {
        return Outcome::refuse(missing);
    };
    let mut p = read.record.clone();
    if let Some(t) = &req.profile_type
        && p.profile_type != *t
    {
        return Outcome::refuse(Es2Error::Invalid(
            "profileType does not match the ICCID's type",
        ));
    }
    if let Err(e) = p.allocate(eid, now, policy) {
        return Outcome::refuse(e.into());
    }
    if let Some(order) = p.order.as_mut() {
        order.type_version = type_version;
    }
    let answer = DownloadOrderResponse {
        header: ResponseHeader::success(),
        iccid: p.iccid.as_str().to_owned(),
    };
    Outcome::new(profile_change(read, p), Ok(answer))
}

/// The `confirmOrder` step: sets the matching id (drawn from `rng` when the
/// operator sent none) and the confirmation code, and confirms or releases
/// the order. `smdp_address` is returned to the operator.
pub fn confirm_order(
    smdp_address: &str,
    operator: &Operator,
    req: &ConfirmOrderRequest,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
    rng: &mut impl CryptoRng,
) -> Outcome<ConfirmOrderResponse, Es2Error> {
    let decided = (|| {
        let iccid = parse_iccid(&req.iccid)?;
        let eid = parse_eid(req.eid.as_deref())?;
        let matching_id = match req
            .matching_id
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            Some(m) => MatchingId::new(m).map_err(|_| Es2Error::Invalid("matchingId"))?,
            None => MatchingId::generate(rng),
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
        let read = owned(profile, &iccid, operator).ok_or(Es2Error::UnknownIccid)?;
        let mut p = read.record.clone();
        p.confirm(confirmation, now)?;
        let order = p.order.as_ref();
        let eid = order.and_then(|o| o.eid);
        let matching_id = order
            .and_then(|o| o.matching_id.clone())
            .ok_or(Es2Error::Invalid("matchingId"))?;
        let answer = ConfirmOrderResponse {
            header: ResponseHeader::success(),
            eid: eid.map(|e| e.to_string()),
            matching_id: matching_id.to_string(),
            smdp_address: Some(smdp_address.to_owned()),
        };
        Ok((profile_change(read, p), answer))
    })();
    decided.into()
}

/// The `cancelOrder` step: ends the order; the profile becomes available
/// again or unavailable for good.
pub fn cancel_order(
    operator: &Operator,
    req: &CancelOrderRequest,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<HeaderOnly, Es2Error> {
    let decided = (|| {
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
        let read = owned(profile, &iccid, operator).ok_or(Es2Error::UnknownIccid)?;
        let mut p = read.record.clone();
        p.cancel(status, eid.as_ref(), matching_id.as_ref(), now)?;
        Ok((profile_change(read, p), success()))
    })();
    decided.into()
}

/// The `releaseProfile` step: a confirmed order becomes downloadable.
pub fn release_profile(
    operator: &Operator,
    req: &ReleaseProfileRequest,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<HeaderOnly, Es2Error> {
    let decided = (|| {
        let iccid = parse_iccid(&req.iccid)?;
        let read = owned(profile, &iccid, operator).ok_or(Es2Error::UnknownIccid)?;
        let mut p = read.record.clone();
        p.release(now)?;
        Ok((profile_change(read, p), success()))
    })();
    decided.into()
}

/// The loaded profile, if it is the one named and the operator's.
fn owned(
    profile: Option<Versioned<ProfileRecord>>,
    iccid: &Iccid,
    operator: &Operator,
) -> Option<Versioned<ProfileRecord>> {
    profile.filter(|p| p.record.iccid == *iccid && p.record.operator == operator.id)
}

fn profile_change(read: Versioned<ProfileRecord>, record: ProfileRecord) -> Changes {
    Changes {
        profile: Some(ProfileWrite::new(read, record)),
        ..Changes::default()
    }
}

fn success() -> HeaderOnly {
    HeaderOnly {
        header: ResponseHeader::success(),
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
