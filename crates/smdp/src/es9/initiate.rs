//! ES9+ `initiateAuthentication` (SGP.22 5.6.1).

use ferrosim_asn1::json::es9::{InitiateAuthenticationRequest, InitiateAuthenticationResponse};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::rasn::types::{FixedOctetString, OctetString};
use ferrosim_asn1::{decode_der, encode_der, rsp};
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_pki::KeyId;
use rand::CryptoRng;
use tracing::debug;

use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::config::SmdpConfig;
use crate::ids::TransactionId;
use crate::session::SessionRecord;
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{Changes, SessionWrite, Store, StoreError};
use crate::time::Timestamp;

/// SGP.22 major versions this SM-DP+ serves.
const SUPPORTED_SVN_MAJOR: [u8; 1] = [2];

/// The step: checks the address and the eUICC's CIs, draws the transaction
/// id and the server challenge from `rng`, signs serverSigned1 with DPauth.
/// The change is the new session.
pub fn initiate_authentication(
    cfg: &SmdpConfig,
    req: &InitiateAuthenticationRequest,
    now: Timestamp,
    rng: &mut impl CryptoRng,
) -> Outcome<InitiateAuthenticationResponse, Es9Error> {
    decide(cfg, req, now, rng).into()
}

fn decide(
    cfg: &SmdpConfig,
    req: &InitiateAuthenticationRequest,
    now: Timestamp,
    rng: &mut impl CryptoRng,
) -> Result<(Changes, InitiateAuthenticationResponse), Es9Error> {
    if !cfg.is_our_address(&req.smdp_address) {
        return Err(Es9Error::AddressRefused(req.smdp_address.clone()));
    }
    let euicc_challenge: [u8; 16] = req
        .euicc_challenge
        .0
        .as_slice()
        .try_into()
        .map_err(|_| Es9Error::BadRequest("euiccChallenge must be 16 bytes".into()))?;
    let info1: rsp::EUICCInfo1 = decode_der(&req.euicc_info1.0).map_err(bad_der("euiccInfo1"))?;
    let svn = info1.svn.0.as_ref();
    if !SUPPORTED_SVN_MAJOR.contains(&svn[0]) {
        return Err(Es9Error::UnsupportedSvn(format!(
            "{}.{}.{}",
            svn[0], svn[1], svn[2]
        )));
    }
    // The eUICC signs with a chain to this CI; we must trust it.
    let ci_for_euicc = info1
        .euicc_ci_pkid_list_for_signing
        .iter()
        .filter_map(|k| KeyId::from_bytes(&k.0.0).ok())
        .find(|k| cfg.trust.ci(k).is_some())
        .ok_or(Es9Error::NoCommonCi)?;
    // The eUICC must be able to verify our DPauth certificate.
    if !info1
        .euicc_ci_pkid_list_for_verification
        .iter()
        .any(|k| k.0.0.as_ref() == cfg.dpauth_ci_key_id())
    {
        return Err(Es9Error::DpauthCiNotAccepted);
    }

    let tid = TransactionId::generate(rng);
    let mut server_challenge = [0u8; 16];
    rng.fill_bytes(&mut server_challenge);

    let signed1 = rsp::ServerSigned1::new(
        rsp::TransactionId(OctetString::from_slice(tid.as_bytes())),
        rsp::Octet16(FixedOctetString::new(euicc_challenge)),
        cfg.address.clone(),
        rsp::Octet16(FixedOctetString::new(server_challenge)),
    );
    let signed1_der = encode_der(&signed1).map_err(|e| Es9Error::Internal(e.to_string()))?;
    let signature = cfg
        .dpauth
        .key
        .sign_raw(&signed1_der)
        .map_err(|e| Es9Error::Internal(format!("DPauth signing failed: {e}")))?;
    let signature_tlv = wrap_5f37(&signature).map_err(|e| Es9Error::Internal(e.to_string()))?;

    let mut ski = vec![0x04, ci_for_euicc.as_bytes().len() as u8];
    ski.extend_from_slice(ci_for_euicc.as_bytes());
    let session = SessionRecord::initiated(
        tid.clone(),
        euicc_challenge,
        server_challenge,
        ci_for_euicc,
        now,
        now.plus(cfg.session_ttl),
    );
    let changes = Changes {
        session: Some(SessionWrite::Insert(session)),
        ..Changes::default()
    };
    Ok((
        changes,
        InitiateAuthenticationResponse {
            header: ResponseHeader::success(),
            transaction_id: tid.clone(),
            server_signed1: Base64(signed1_der),
            server_signature1: Base64(signature_tlv),
            euicc_ci_pkid_to_be_used: Base64(ski),
            server_certificate: Base64(cfg.dpauth.certificate.der().to_vec()),
        },
    ))
}

/// Whether one more session may wait for `authenticateClient` when
/// `pending` wait already and at most `cap` may.
pub fn admit_session(pending: u64, cap: u64) -> Result<(), Es9Error> {
    if pending >= cap {
        return Err(Es9Error::TooManySessions(pending));
    }
    Ok(())
}

impl<S: Store> Smdp<S> {
    /// Starts a download session: runs [`initiate_authentication`] and
    /// stores the session. A transaction id that exists already (a broken
    /// generator) draws a new one.
    pub async fn initiate_authentication(
        &self,
        req: &InitiateAuthenticationRequest,
        now: Timestamp,
    ) -> Result<InitiateAuthenticationResponse, Es9Error> {
        // Bound what unauthenticated callers can store: a session waits for
        // authenticateClient at most session_ttl, and at most
        // max_pending_sessions wait at once (concurrent calls may pass the
        // check together, so the bound holds up to the calls in flight).
        let cap = self.config.max_pending_sessions;
        let pending = self.store.pending_sessions(now, cap).await?;
        admit_session(pending, cap)?;
        for _ in 0..ATTEMPTS {
            let outcome =
                initiate_authentication(&self.config, req, now, &mut self.randomness.for_call());
            match self.settle(outcome).await {
                Ok(Some(answer)) => {
                    debug!(transaction_id = %answer.transaction_id, "ES9+ session initiated");
                    return Ok(answer);
                }
                Ok(None) | Err(Es9Error::Store(StoreError::Conflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Es9Error::Store(StoreError::Stale))
    }
}
