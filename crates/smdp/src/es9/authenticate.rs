//! ES9+ `authenticateClient` (SGP.22 5.6.3).

use ferrosim_asn1::json::es9::{AuthenticateClientRequest, AuthenticateClientResponse};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::rasn::types::OctetString;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{encode_der, rsp, signed};
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_pki::verify_euicc_chain;
use tracing::{debug, info};

use super::{Es9Error, bad_der, parse_tid};
use crate::Smdp;
use crate::ids::MatchingId;
use crate::metadata::store_metadata_der;
use crate::session::SessionState;
use crate::store::{ProfileSelector, Store};
use crate::time::Timestamp;

impl<S: Store> Smdp<S> {
    /// Authenticates the eUICC (certificate chain, EID range, signature,
    /// challenge), binds its order to the session and signs smdpSigned2 with
    /// DPpb.
    pub async fn authenticate_client(
        &self,
        req: &AuthenticateClientRequest,
        now: Timestamp,
    ) -> Result<AuthenticateClientResponse, Es9Error> {
        let cfg = &self.config;
        let tid = parse_tid(&req.transaction_id)?;
        let bytes = &req.authenticate_server_response.0;
        // Read by tag rather than decoded whole: euiccInfo2 grows with every
        // SGP.22 version, and an eUICC newer than our ASN.1 module must still
        // authenticate. What is signed is checked over the received bytes.
        let ok = EuiccSigned1Fields::read(bytes)?;
        let session = self
            .store
            .session(&tid)
            .await?
            .filter(|s| s.is_live(now) && s.state == SessionState::Initiated)
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))?;
        if ok.transaction_id != tid.as_bytes() {
            return Err(Es9Error::UnknownTransaction(tid.to_hex()));
        }

        // The certificate chain and the signature, over the bytes as received.
        let parts = signed::euicc_signed1(bytes).map_err(bad_der("authenticateServerResponse"))?;
        let (euicc_der, eum_der) = certificates(bytes)?;
        let euicc = verify_euicc_chain(&cfg.trust, eum_der, euicc_der, now.to_system_time())?;
        if euicc.ci_key_id.as_bytes() != session.ci_key_id.as_slice() {
            return Err(Es9Error::CiMismatch);
        }
        euicc
            .certificate
            .verifying_key()
            .verify_raw(parts.signed, parts.signature)
            .map_err(|_| Es9Error::EuiccSignature("euiccSigned1"))?;
        if ok.server_challenge != session.server_challenge.as_slice() {
            return Err(Es9Error::ServerChallengeMismatch);
        }
        if !cfg.is_our_address(&ok.server_address) {
            return Err(Es9Error::AddressRefused(ok.server_address.clone()));
        }

        // Which order: by matching id, or (none given) the EID's released order.
        let selector = match ok.matching_id.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => ProfileSelector::MatchingId(
                MatchingId::new(m).map_err(|_| Es9Error::MatchingIdRefused)?,
            ),
            None => ProfileSelector::ReleasedForEid(euicc.eid),
        };

        let eid = euicc.eid;
        let public_key = euicc.public_key_sec1.clone();
        let policy = cfg.policy;
        let dppb = cfg.dppb.key.clone();
        let signature1_tlv =
            wrap_5f37(parts.signature).map_err(|e| Es9Error::Internal(e.to_string()))?;
        let outcome = self
            .store
            .update_session(
                &tid,
                Some(&selector),
                now,
                move |session, profile, events| {
                    if session.state != SessionState::Initiated {
                        return Err(Es9Error::UnknownTransaction(
                            session.transaction_id.to_hex(),
                        ));
                    }
                    let profile = profile.ok_or(Es9Error::MatchingIdRefused)?;
                    let cc_required = profile.bind_session(
                        &session.transaction_id,
                        &eid,
                        now,
                        &policy,
                        events,
                    )?;
                    let signed2 = rsp::SmdpSigned2::new(
                        rsp::TransactionId(OctetString::from_slice(
                            session.transaction_id.as_bytes(),
                        )),
                        cc_required,
                        None,
                    );
                    let signed2_der =
                        encode_der(&signed2).map_err(|e| Es9Error::Internal(e.to_string()))?;
                    let mut to_sign = signed2_der.clone();
                    to_sign.extend_from_slice(&signature1_tlv);
                    let sig = dppb
                        .sign_raw(&to_sign)
                        .map_err(|e| Es9Error::Internal(format!("DPpb signing failed: {e}")))?;
                    let sig_tlv = wrap_5f37(&sig).map_err(|e| Es9Error::Internal(e.to_string()))?;
                    session.state = SessionState::Authenticated;
                    session.eid = Some(eid);
                    session.euicc_public_key = Some(public_key);
                    session.iccid = Some(profile.iccid.clone());
                    session.cc_required = cc_required;
                    session.smdp_signature2 = Some(sig_tlv.clone());
                    session.updated_at = now;
                    Ok((profile.clone(), signed2_der, sig_tlv))
                },
            )
            .await?
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))?;
        let (profile, signed2_der, sig_tlv) = outcome?;

        let profile_type = self
            .profile_type(&profile.operator, &profile.profile_type, now)
            .await
            .map_err(|e| Es9Error::Internal(e.to_string()))?;
        let metadata = store_metadata_der(&profile.iccid, &profile_type.metadata, &cfg.address)
            .map_err(|e| Es9Error::Internal(e.to_string()))?;
        info!(transaction_id = %tid, iccid = %profile.iccid.as_str(), "eUICC authenticated, order bound");
        debug!(eid = %euicc.eid, "authenticated eUICC");
        Ok(AuthenticateClientResponse {
            header: ResponseHeader::success(),
            transaction_id: tid.to_hex(),
            profile_metadata: Base64(metadata),
            smdp_signed2: Base64(signed2_der),
            smdp_signature2: Base64(sig_tlv),
            smdp_certificate: Base64(cfg.dppb.certificate.der().to_vec()),
        })
    }
}

/// The eUICC and EUM certificates of an AuthenticateServerResponse, as received.
fn certificates(bytes: &[u8]) -> Result<(&[u8], &[u8]), Es9Error> {
    let bad = |e: ferrosim_asn1::tlv::TlvError| {
        Es9Error::BadRequest(format!("authenticateServerResponse: {e}"))
    };
    let outer = Tlv::parse_exact(bytes).map_err(bad)?;
    let ok = outer.require(0xA0).map_err(bad)?;
    let certs: Vec<&[u8]> = ok
        .children()
        .filter_map(Result::ok)
        .filter(|t| t.tag == 0x30)
        .skip(1)
        .map(|t| t.raw)
        .collect();
    match certs.as_slice() {
        [euicc, eum, ..] => Ok((euicc, eum)),
        _ => Err(Es9Error::BadRequest(
            "authenticateServerResponse lacks certificates".into(),
        )),
    }
}

/// The fields of an AuthenticateServerResponse (BF38) the SM-DP+ acts on,
/// read by tag from the received bytes.
struct EuiccSigned1Fields {
    transaction_id: Vec<u8>,
    server_address: String,
    server_challenge: Vec<u8>,
    matching_id: Option<String>,
}

impl EuiccSigned1Fields {
    fn read(bytes: &[u8]) -> Result<Self, Es9Error> {
        let bad = |what: &str| Es9Error::BadRequest(format!("authenticateServerResponse: {what}"));
        let tlv = |e: ferrosim_asn1::tlv::TlvError| bad(&e.to_string());
        let outer = Tlv::parse_tagged(bytes, 0xBF38).map_err(tlv)?;
        let first = outer
            .children()
            .next()
            .ok_or_else(|| bad("empty"))?
            .map_err(tlv)?;
        match first.tag {
            0xA0 => {}
            0xA1 => {
                // authenticateResponseError { [0] transactionId, authenticateErrorCode INTEGER }
                let code = first
                    .find(0x02)
                    .map_err(tlv)?
                    .filter(|c| (1..=8).contains(&c.value.len()))
                    .map(|c| {
                        c.value
                            .iter()
                            .fold(i64::from(c.value[0] as i8) >> 8, |acc, b| {
                                (acc << 8) | i64::from(*b)
                            })
                    })
                    .unwrap_or(-1);
                return Err(Es9Error::EuiccError {
                    message: "AuthenticateServerResponse",
                    code,
                });
            }
            _ => return Err(bad("unknown alternative")),
        }
        let signed1 = first.require(0x30).map_err(tlv)?;
        let utf8 =
            |t: Tlv<'_>| String::from_utf8(t.value.to_vec()).map_err(|_| bad("text is not UTF-8"));
        let ctx = signed1.require(0xA0).map_err(tlv)?;
        Ok(Self {
            transaction_id: signed1.require(0x80).map_err(tlv)?.value.to_vec(),
            server_address: utf8(signed1.require(0x83).map_err(tlv)?)?,
            server_challenge: signed1.require(0x84).map_err(tlv)?.value.to_vec(),
            matching_id: ctx.find(0x80).map_err(tlv)?.map(utf8).transpose()?,
        })
    }
}
