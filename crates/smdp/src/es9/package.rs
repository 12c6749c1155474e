//! ES9+ `getBoundProfilePackage` (SGP.22 5.6.2).

use ferrosim_asn1::json::es9::{GetBoundProfilePackageRequest, GetBoundProfilePackageResponse};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_crypto::ecdsa::VerifyingKey;
use tracing::info;

use super::{Es9Error, bad_der, parse_tid};
use crate::Smdp;
use crate::bpp::{BppInput, build_bpp};
use crate::metadata::store_metadata_der;
use crate::order::CancelSessionReason;
use crate::session::SessionState;
use crate::store::{ProfileSelector, Store};
use crate::time::Timestamp;

impl<S: Store> Smdp<S> {
    /// Verifies euiccSignature2 and the confirmation code, builds the
    /// personalised Bound Profile Package and marks the order downloaded.
    pub async fn get_bound_profile_package(
        &self,
        req: &GetBoundProfilePackageRequest,
        now: Timestamp,
    ) -> Result<GetBoundProfilePackageResponse, Es9Error> {
        let cfg = &self.config;
        let tid = parse_tid(&req.transaction_id)?;
        let bytes = &req.prepare_download_response.0;
        let response: rsp::PrepareDownloadResponse =
            decode_der(bytes).map_err(bad_der("prepareDownloadResponse"))?;
        let session = self
            .store
            .session(&tid)
            .await?
            .filter(|s| {
                s.is_live(now)
                    && matches!(
                        s.state,
                        SessionState::Authenticated | SessionState::PackageIssued
                    )
            })
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))?;
        let (Some(eid), Some(public_key), Some(iccid), Some(smdp_signature2)) = (
            session.eid,
            session.euicc_public_key.as_deref(),
            session.iccid.clone(),
            session.smdp_signature2.as_deref(),
        ) else {
            return Err(Es9Error::UnknownTransaction(tid.to_hex()));
        };
        let ok = match response {
            rsp::PrepareDownloadResponse::downloadResponseOk(ok) => ok,
            rsp::PrepareDownloadResponse::downloadResponseError(err) => {
                let code = i64::try_from(&err.download_error_code.0).unwrap_or(-1);
                // The eUICC refused the binding: the download ends here.
                let selector = ProfileSelector::Iccid(iccid, None);
                self.store
                    .update_session(&tid, Some(&selector), now, move |s, p, events| {
                        s.state = SessionState::Cancelled;
                        s.updated_at = now;
                        if let Some(p) = p {
                            let _ = p.cancel_session(
                                &s.transaction_id,
                                s.eid.as_ref(),
                                // Not a CancelSession reason: the eUICC's
                                // downloadErrorCode, passed on as received.
                                CancelSessionReason::Other(code),
                                now,
                                events,
                            );
                        }
                    })
                    .await?;
                return Err(Es9Error::EuiccError {
                    message: "PrepareDownloadResponse",
                    code,
                });
            }
            _ => {
                return Err(Es9Error::BadRequest(
                    "unknown PrepareDownloadResponse".into(),
                ));
            }
        };
        if ok.euicc_signed2.transaction_id.0.as_ref() != tid.as_bytes() {
            return Err(Es9Error::UnknownTransaction(tid.to_hex()));
        }
        let parts = signed::euicc_signed2(bytes).map_err(bad_der("prepareDownloadResponse"))?;
        let mut signed_data = parts.signed.to_vec();
        signed_data.extend_from_slice(smdp_signature2);
        VerifyingKey::from_sec1(public_key)
            .and_then(|k| k.verify_raw(&signed_data, parts.signature))
            .map_err(|_| Es9Error::EuiccSignature("euiccSigned2"))?;
        let euicc_otpk = ok.euicc_signed2.euicc_otpk.to_vec();
        let hashed_cc = ok.euicc_signed2.hash_cc.as_ref().map(|h| h.0.to_vec());

        // Build the package before committing, so a failure leaves the order as it was.
        let profile =
            self.store.profile(&iccid).await?.ok_or_else(|| {
                Es9Error::Internal(format!("profile {} vanished", iccid.as_str()))
            })?;
        let profile_type = self
            .profile_type(&profile.operator, &profile.profile_type, now)
            .await
            .map_err(|e| Es9Error::Internal(e.to_string()))?;
        let personalisation = self.store.personalisation(&iccid).await?.ok_or_else(|| {
            Es9Error::Internal(format!("personalisation of {} missing", iccid.as_str()))
        })?;
        let package = profile_type
            .package
            .personalise(&personalisation)
            .map_err(|e| Es9Error::Internal(format!("personalising {}: {e}", iccid.as_str())))?;
        let metadata = store_metadata_der(&iccid, &profile_type.metadata, &cfg.address)
            .map_err(|e| Es9Error::Internal(e.to_string()))?;
        let bpp = build_bpp(
            &BppInput {
                transaction_id: tid.as_bytes(),
                host_id: &cfg.host_id,
                eid: &eid.to_bcd(),
                euicc_otpk: &euicc_otpk,
                metadata: &metadata,
                profile: &package,
                dppb: cfg.dppb.key.as_ref(),
            },
            &mut rand::rng(),
        )
        .map_err(|e| match e {
            crate::bpp::BppError::BadEuiccOtpk(_) => Es9Error::EuiccSignature("euiccOtpk"),
            other => Es9Error::Internal(other.to_string()),
        })?;

        let policy = cfg.policy;
        let selector = ProfileSelector::Iccid(iccid.clone(), None);
        self.store
            .update_session(&tid, Some(&selector), now, move |s, p, events| {
                let p = p.ok_or_else(|| Es9Error::Internal("profile vanished".into()))?;
                p.check_confirmation_code(
                    &s.transaction_id,
                    &eid,
                    hashed_cc.as_deref(),
                    now,
                    &policy,
                    events,
                )?;
                p.mark_downloaded(&s.transaction_id, &eid, now, events)?;
                s.state = SessionState::PackageIssued;
                s.euicc_otpk = Some(euicc_otpk);
                s.updated_at = now;
                Ok::<(), Es9Error>(())
            })
            .await?
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))??;
        info!(transaction_id = %tid, iccid = %iccid.as_str(), bytes = bpp.len(), "bound profile package issued");
        Ok(GetBoundProfilePackageResponse {
            header: ResponseHeader::success(),
            transaction_id: tid.to_hex(),
            bound_profile_package: Base64(bpp),
        })
    }
}
