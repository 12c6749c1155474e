//! `revokeProfile`: the operator's revocation over ES2+ (a ferrosim
//! extension beside SGP.22's four functions, which have no revocation:
//! `cancelOrder` only ends an order not yet installed). Same header, same
//! authentication, same idempotency (`functionCallIdentifier`) as the
//! other ES2+ functions; it does what `ferrosim profile revoke` does on the
//! SM-DP+'s side: ends the order, records the ICCID's end of life under the
//! operator's reuse policy (or the one given), and names the device the
//! profile must be deleted from when it may be on one.

use ferrosim_asn1::json::ResponseHeader;
use ferrosim_asn1::json::es2::RequestHeader;
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use serde::{Deserialize, Serialize};

use super::{EndOfLifeError, ReusePolicy, RevokeError, device_to_clean};
use crate::Smdp;
use crate::es2::Es2Error;
use crate::status::StatusCode;
use crate::store::{EndOfLifeStore, Operator, Store};
use crate::time::Timestamp;

/// The body of `revokeProfile`. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeProfileRequest {
    /// Header.
    pub header: RequestHeader,
    /// The profile (an ICCID with a correct Luhn digit: anything else is
    /// refused while the body is read).
    pub iccid: Iccid,
    /// Why (kept with the revocation; at most [`super::MAX_REASON`] characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `retire` or `quarantine`; the operator's reuse policy when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_policy: Option<String>,
    /// The quarantine period in seconds (with `quarantine` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_seconds: Option<i64>,
}

/// The answer of `revokeProfile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeProfileResponse {
    /// Header (`Executed-Success`).
    pub header: ResponseHeader,
    /// The profile.
    pub iccid: Iccid,
    /// `awaiting-device-delete`, `retired` or `quarantined`.
    pub end_of_life_state: String,
    /// The policy applied: `retire` or `quarantine`.
    pub reuse_policy: String,
    /// The quarantine period in seconds (0 for `retire`).
    pub quarantine_seconds: i64,
    /// The device the profile must be deleted from (disable + delete, e.g.
    /// as an eUICC package through the eIM), when it may be on one; the
    /// revocation completes when its delete notification arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_device: Option<Eid>,
    /// When the ICCID may be reused (RFC 3339), when that is known already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable_from: Option<String>,
}

impl EndOfLifeError {
    /// The SGP.22 status code an ES2+ `revokeProfile` refusal is reported with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownIccid => StatusCode::ICCID_UNKNOWN,
            Self::AlreadyRevoked(_) => StatusCode::ICCID_NOT_ALLOWED,
            Self::UnknownPolicy(_) | Self::BadQuarantine(_) | Self::ReasonTooLong => {
                StatusCode::INVALID_REQUEST_FORMAT
            }
            Self::DeleteBeforeRevocation => StatusCode::EXECUTION_ERROR,
            Self::Order(e) => e.status(),
        }
    }
}

impl<S: Store + EndOfLifeStore> Smdp<S> {
    /// `revokeProfile`: checks the request, revokes the profile
    /// ([`Smdp::revoke_profile`]) and stores its revocation. A second
    /// revocation, another operator's or an unknown ICCID, a bad policy or
    /// quarantine is refused and changes nothing.
    pub async fn revoke_profile_es2(
        &self,
        operator: &Operator,
        req: &RevokeProfileRequest,
        now: Timestamp,
    ) -> Result<RevokeProfileResponse, Es2Error> {
        let iccid = &req.iccid;
        let policy = match (&req.reuse_policy, req.quarantine_seconds) {
            (Some(name), secs) => {
                if name == "retire" && secs.is_some_and(|s| s != 0) {
                    return Err(Es2Error::Invalid(
                        "quarantineSeconds (it goes with reusePolicy quarantine)",
                    ));
                }
                ReusePolicy::parse(name, secs.unwrap_or(0)).map_err(Es2Error::EndOfLife)?
            }
            (None, Some(_)) => {
                return Err(Es2Error::Invalid(
                    "quarantineSeconds (it goes with reusePolicy quarantine)",
                ));
            }
            (None, None) => self.store.reuse_policy(&operator.id).await?,
        };
        let existing = self.store.revocation(iccid).await?;
        let reason = req.reason.as_deref().unwrap_or("");
        let revocation = match self
            .revoke_profile(&operator.id, iccid, existing.as_ref(), policy, reason, now)
            .await
        {
            Ok(r) => r,
            Err(RevokeError::Refused(e)) => return Err(Es2Error::EndOfLife(e)),
            Err(RevokeError::Store(e)) => return Err(e.into()),
        };
        self.store.insert_revocation(&revocation).await?;
        Ok(RevokeProfileResponse {
            header: ResponseHeader::success(),
            iccid: iccid.clone(),
            end_of_life_state: revocation.state.as_str().to_owned(),
            reuse_policy: policy.name().to_owned(),
            quarantine_seconds: policy.quarantine_seconds(),
            delete_on_device: device_to_clean(&revocation).copied(),
            reusable_from: revocation.reusable_from().map(Timestamp::to_rfc3339),
        })
    }
}
