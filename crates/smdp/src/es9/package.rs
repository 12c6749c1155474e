//! ES9+ `getBoundProfilePackage` (SGP.22 5.6.2).

use ferrosim_asn1::json::es9::{GetBoundProfilePackageRequest, GetBoundProfilePackageResponse};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_saip::Personalisation;
use rand::CryptoRng;
use tracing::info;

use super::authenticate::refused_with;
use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::bpp::{BppError, BppInput, build_bpp};
use crate::config::SmdpConfig;
use crate::order::{CancelSessionReason, ProfileRecord};
use crate::service::ProfileTemplate;
use crate::session::{Binding, SessionRecord, SessionState};
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{
    Changes, ProfileWrite, SessionWrite, StepRecords, Store, StoreError, Versioned,
};
use crate::time::Timestamp;

/// What the step needs besides the request: the session, and the bound
/// profile with its type and personalisation values.
#[derive(Debug, Default)]
pub struct PackageInputs<'a> {
    /// The session of the request's transaction id.
    pub session: Option<Versioned<SessionRecord>>,
    /// The profile bound to the session.
    pub profile: Option<Versioned<ProfileRecord>>,
    /// The profile's type.
    pub template: Option<&'a ProfileTemplate>,
    /// The profile's personalisation values.
    pub personalisation: Option<&'a Personalisation>,
}

/// The step: verifies euiccSignature2 and the confirmation code, marks the
/// order downloaded and builds the personalised Bound Profile Package, with
/// the one-time key and the profile protection keys drawn from `rng`. An
/// eUICC that refused the binding (downloadResponseError) ends the session.
pub fn get_bound_profile_package(
    cfg: &SmdpConfig,
    req: &GetBoundProfilePackageRequest,
    inputs: PackageInputs<'_>,
    now: Timestamp,
    rng: &mut impl CryptoRng,
) -> Outcome<GetBoundProfilePackageResponse, Es9Error> {
    let PackageInputs {
        session,
        profile,
        template,
        personalisation,
    } = inputs;
    let tid = req.transaction_id.clone();
    let bytes = &req.prepare_download_response.0;
    let response: rsp::PrepareDownloadResponse = match decode_der(bytes) {
        Ok(r) => r,
        Err(e) => return Outcome::refuse(bad_der("prepareDownloadResponse")(e)),
    };
    let unknown = || Es9Error::UnknownTransaction(tid.to_hex());
    let Some(mut session) = session.filter(|s| {
        s.record.transaction_id == tid
            && s.record.is_live(now)
            && matches!(
                s.record.state(),
                SessionState::Authenticated | SessionState::PackageIssued
            )
    }) else {
        return Outcome::refuse(unknown());
    };
    let Some(binding) = session.record.binding().cloned() else {
        return Outcome::refuse(unknown());
    };
    let ok = match response {
        rsp::PrepareDownloadResponse::downloadResponseOk(ok) => ok,
        rsp::PrepareDownloadResponse::downloadResponseError(err) => {
            let code = i64::try_from(&err.download_error_code.0).unwrap_or(-1);
            return refused_by_euicc(session, profile, &binding, code, now);
        }
        _ => {
            return Outcome::refuse(Es9Error::BadRequest(
                "unknown PrepareDownloadResponse".into(),
            ));
        }
    };
    if ok.euicc_signed2.transaction_id.0.as_ref() != tid.as_bytes() {
        return Outcome::refuse(unknown());
    }
    let verified = signed::euicc_signed2(bytes)
        .map_err(bad_der("prepareDownloadResponse"))
        .and_then(|parts| {
            let mut signed_data = Vec::with_capacity(parts.signed.len() + 67);
            signed_data.extend_from_slice(parts.signed);
            signed_data.extend_from_slice(&binding.smdp_signature2);
            binding
                .euicc_public_key
                .verifying_key()
                .and_then(|k| k.verify_raw(&signed_data, parts.signature))
                .map_err(|_| Es9Error::EuiccSignature("euiccSigned2"))
        });
    if let Err(e) = verified {
        return Outcome::refuse(e);
    }
    let Some(read) = profile.filter(|p| p.record.iccid == binding.iccid) else {
        return Outcome::refuse(Es9Error::Internal(format!(
            "profile {} vanished",
            binding.iccid.as_str()
        )));
    };
    let mut profile = read.record.clone();

    // The order rules first: a wrong code is counted even though no package is built.
    let hashed_cc = ok.euicc_signed2.hash_cc.as_ref().map(|h| h.0.as_ref());
    let mut events = Vec::new();
    let rules = profile
        .check_confirmation_code(&tid, &binding.eid, hashed_cc, now, &cfg.policy, &mut events)
        .and_then(|()| profile.mark_downloaded(&tid, &binding.eid, now, &mut events));
    if let Err(e) = rules {
        return refused_with(read, profile, events, e.into());
    }

    // Then the package; if it cannot be built, nothing changes.
    let source = (template, personalisation);
    let bpp = match build_package(
        cfg,
        &tid,
        &binding,
        &ok.euicc_signed2.euicc_otpk,
        source,
        rng,
    ) {
        Ok(bpp) => bpp,
        Err(e) => return Outcome::refuse(e),
    };
    let euicc_otpk = ok.euicc_signed2.euicc_otpk.to_vec();
    if let Err(e) = session.record.issue_package(euicc_otpk, now) {
        return Outcome::refuse(Es9Error::UnknownTransaction(e.to_string()));
    }
    let changes = Changes {
        session: Some(SessionWrite::Update {
            expected: session.version,
            record: session.record,
        }),
        profile: Some(ProfileWrite::new(read, profile)),
        events,
        notification: None,
    };
    Outcome::new(
        changes,
        Ok(GetBoundProfilePackageResponse {
            header: ResponseHeader::success(),
            transaction_id: tid.clone(),
            bound_profile_package: Base64(bpp),
        }),
    )
}

/// The eUICC refused the binding: the session ends, and the order hears of
/// it with the eUICC's downloadErrorCode (passed on as received, it is no
/// CancelSession reason).
fn refused_by_euicc(
    mut session: Versioned<SessionRecord>,
    profile: Option<Versioned<ProfileRecord>>,
    binding: &Binding,
    code: i64,
    now: Timestamp,
) -> Outcome<GetBoundProfilePackageResponse, Es9Error> {
    let tid = session.record.transaction_id.clone();
    session.record.cancel(now);
    let mut changes = Changes {
        session: Some(SessionWrite::Update {
            expected: session.version,
            record: session.record,
        }),
        ..Changes::default()
    };
    if let Some(read) = profile.filter(|p| p.record.iccid == binding.iccid) {
        let mut p = read.record.clone();
        let mut events = Vec::new();
        let reason = CancelSessionReason::Other(code);
        // A superseded session may not touch the order: then nothing changes.
        if p.cancel_session(&tid, Some(&binding.eid), reason, now, &mut events)
            .is_ok()
        {
            changes.profile = Some(ProfileWrite::new(read, p));
            changes.events = events;
        }
    }
    Outcome::new(
        changes,
        Err(Es9Error::EuiccError {
            message: "PrepareDownloadResponse",
            code,
        }),
    )
}

/// The personalised package, bound to the eUICC's one-time key.
fn build_package(
    cfg: &SmdpConfig,
    tid: &crate::ids::TransactionId,
    binding: &Binding,
    euicc_otpk: &[u8],
    (template, personalisation): (Option<&ProfileTemplate>, Option<&Personalisation>),
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, Es9Error> {
    let iccid = &binding.iccid;
    let template = template
        .ok_or_else(|| Es9Error::Internal(format!("profile type of {} missing", iccid.as_str())))?;
    let personalisation = personalisation.ok_or_else(|| {
        Es9Error::Internal(format!("personalisation of {} missing", iccid.as_str()))
    })?;
    let package = template
        .package
        .personalise(personalisation)
        .map_err(|e| Es9Error::Internal(format!("personalising {}: {e}", iccid.as_str())))?;
    let metadata = template
        .store_metadata_der(iccid, &cfg.address)
        .map_err(|e| Es9Error::Internal(e.to_string()))?;
    build_bpp(
        &BppInput {
            transaction_id: tid.as_bytes(),
            host_id: &cfg.host_id,
            eid: &binding.eid.to_bcd(),
            euicc_otpk,
            metadata: &metadata,
            profile: &package,
            dppb: cfg.dppb.key.as_ref(),
        },
        rng,
    )
    .map_err(|e| match e {
        BppError::BadEuiccOtpk(_) => Es9Error::EuiccSignature("euiccOtpk"),
        other => Es9Error::Internal(other.to_string()),
    })
}

impl<S: Store> Smdp<S> {
    /// Hands out the Bound Profile Package: loads the session, the bound
    /// profile, its type and personalisation, runs
    /// [`get_bound_profile_package`], commits.
    pub async fn get_bound_profile_package(
        &self,
        req: &GetBoundProfilePackageRequest,
        now: Timestamp,
    ) -> Result<GetBoundProfilePackageResponse, Es9Error> {
        let tid = req.transaction_id.clone();
        for _ in 0..ATTEMPTS {
            let StepRecords {
                session,
                profile,
                personalisation,
            } = self.store.session_and_bound_profile(&tid, true).await?;
            let template = self.step_template(profile.as_ref(), now).await?;
            let inputs = PackageInputs {
                session,
                profile,
                template: template.as_deref(),
                personalisation: personalisation.as_ref(),
            };
            let outcome = get_bound_profile_package(
                &self.config,
                req,
                inputs,
                now,
                &mut self.randomness.for_call(),
            );
            if let Some(answer) = self.settle(outcome).await? {
                info!(transaction_id = %tid, bytes = answer.bound_profile_package.0.len(), "bound profile package issued");
                return Ok(answer);
            }
        }
        Err(Es9Error::Store(StoreError::Stale))
    }
}
