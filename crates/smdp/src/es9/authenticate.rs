//! ES9+ `authenticateClient` (SGP.22 5.6.3).

use ferrosim_asn1::json::es9::{AuthenticateClientRequest, AuthenticateClientResponse};
use ferrosim_asn1::json::{Base64, ResponseHeader};
use ferrosim_asn1::rasn::types::OctetString;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{encode_der, rsp, signed};
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_pki::{RspCertificate, verify_euicc_chain};
use tracing::{debug, info};

use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::config::SmdpConfig;
use crate::ids::{MatchingId, TransactionId};
use crate::order::ProfileRecord;
use crate::service::ProfileTemplate;
use crate::session::{Binding, EuiccPublicKey, SessionPhase, SessionRecord};
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{
    Changes, ProfileSelector, ProfileWrite, SessionWrite, StepRecords, Store, StoreError, Versioned,
};
use crate::time::Timestamp;

/// What an `authenticateClient` request asks the driver to load: the
/// session, and the order by matching id or, without one, the released order
/// of the EID in the eUICC certificate (read here without verification; the
/// step verifies the chain). `None` when the request does not say.
pub fn authenticate_client_loads(
    req: &AuthenticateClientRequest,
) -> Result<(TransactionId, Option<ProfileSelector>), Es9Error> {
    let tid = req.transaction_id.clone();
    let bytes = &req.authenticate_server_response.0;
    let fields = EuiccSigned1Fields::read(bytes)?;
    let selector = match fields.matching_id.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => MatchingId::new(m).ok().map(ProfileSelector::MatchingId),
        None => certificates(bytes)
            .ok()
            .and_then(|(euicc, _)| RspCertificate::from_der(euicc).ok())
            .and_then(|c| c.eid().ok())
            .map(ProfileSelector::ReleasedForEid),
    };
    Ok((tid, selector))
}

/// The step: authenticates the eUICC (certificate chain to the agreed CI,
/// EID range, euiccSignature1, our challenge, our address), binds its order
/// to the session and signs smdpSigned2 with DPpb. `session` and `profile`
/// are what [`authenticate_client_loads`] named; `template` is the profile's type.
pub fn authenticate_client(
    cfg: &SmdpConfig,
    req: &AuthenticateClientRequest,
    session: Option<Versioned<SessionRecord>>,
    profile: Option<Versioned<ProfileRecord>>,
    template: Option<&ProfileTemplate>,
    now: Timestamp,
) -> Outcome<AuthenticateClientResponse, Es9Error> {
    let verified = match verify(cfg, req, session, now) {
        Ok(v) => v,
        Err(e) => return Outcome::refuse(e),
    };
    bind(cfg, verified, profile, template, now)
}

/// What the checks of the eUICC established.
struct Verified {
    tid: TransactionId,
    session: Versioned<SessionRecord>,
    eid: ferrosim_pki::Eid,
    public_key: EuiccPublicKey,
    signature1_tlv: Vec<u8>,
    matching_id: Option<MatchingId>,
}

fn verify(
    cfg: &SmdpConfig,
    req: &AuthenticateClientRequest,
    session: Option<Versioned<SessionRecord>>,
    now: Timestamp,
) -> Result<Verified, Es9Error> {
    let tid = req.transaction_id.clone();
    let bytes = &req.authenticate_server_response.0;
    // Read by tag rather than decoded whole: euiccInfo2 grows with every
    // SGP.22 version, and an eUICC newer than our ASN.1 module must still
    // authenticate. What is signed is checked over the received bytes.
    let ok = EuiccSigned1Fields::read(bytes)?;
    let unknown = || Es9Error::UnknownTransaction(tid.to_hex());
    let session = session
        .filter(|s| s.record.transaction_id == tid && s.record.is_live(now))
        .ok_or_else(unknown)?;
    let SessionPhase::Initiated {
        server_challenge,
        ci_key_id,
        ..
    } = &session.record.phase
    else {
        return Err(unknown());
    };
    if ok.transaction_id.as_ref() != Some(&tid) {
        return Err(unknown());
    }

    // The certificate chain and the signature, over the bytes as received.
    let parts = signed::euicc_signed1(bytes).map_err(bad_der("authenticateServerResponse"))?;
    let (euicc_der, eum_der) = certificates(bytes)?;
    let euicc = verify_euicc_chain(&cfg.trust, eum_der, euicc_der, now.to_system_time())?;
    if euicc.ci_key_id != *ci_key_id {
        return Err(Es9Error::CiMismatch);
    }
    euicc
        .certificate
        .verifying_key()
        .verify_raw(parts.signed, parts.signature)
        .map_err(|_| Es9Error::EuiccSignature("euiccSigned1"))?;
    if ok.server_challenge != server_challenge.as_slice() {
        return Err(Es9Error::ServerChallengeMismatch);
    }
    if !cfg.is_our_address(&ok.server_address) {
        return Err(Es9Error::AddressRefused(ok.server_address));
    }
    let signature1_tlv =
        wrap_5f37(parts.signature).map_err(|e| Es9Error::Internal(e.to_string()))?;
    Ok(Verified {
        tid,
        session,
        eid: euicc.eid,
        public_key: EuiccPublicKey::parsed(euicc.certificate.verifying_key().clone()),
        signature1_tlv,
        // An invalid matching id names no order: refused as such.
        matching_id: ok
            .matching_id
            .filter(|m| !m.is_empty())
            .map(MatchingId::new)
            .transpose()?,
    })
}

/// Binds the verified eUICC's order and signs smdpSigned2.
fn bind(
    cfg: &SmdpConfig,
    v: Verified,
    profile: Option<Versioned<ProfileRecord>>,
    template: Option<&ProfileTemplate>,
    now: Timestamp,
) -> Outcome<AuthenticateClientResponse, Es9Error> {
    // The order the request names: by matching id, or the EID's released order.
    let named = |p: &ProfileRecord| match &v.matching_id {
        Some(m) => p.matching_id() == Some(m),
        None => p.order.as_ref().and_then(|o| o.eid) == Some(v.eid),
    };
    let Some(read) = profile.filter(|p| named(&p.record)) else {
        return Outcome::refuse(Es9Error::MatchingIdRefused);
    };
    let mut profile = read.record.clone();
    let mut events = Vec::new();
    let cc_required = match profile.bind_session(&v.tid, &v.eid, now, &cfg.policy, &mut events) {
        Ok(cc) => cc,
        Err(e) => return refused_with(read, profile, events, e.into()),
    };
    let signed = sign_smdp_signed2(cfg, &v.tid, cc_required, &v.signature1_tlv).and_then(
        |(signed2_der, signature2)| {
            let template = template.ok_or_else(|| {
                Es9Error::Internal(format!("profile type {} missing", profile.profile_type))
            })?;
            let metadata = template
                .store_metadata_der(&profile.iccid, &cfg.address)
                .map_err(|e| Es9Error::Internal(e.to_string()))?;
            Ok((signed2_der, signature2, metadata))
        },
    );
    let (signed2_der, signature2, metadata) = match signed {
        Ok(s) => s,
        Err(e) => return Outcome::refuse(e),
    };
    let mut session = v.session;
    let binding = Binding {
        eid: v.eid,
        euicc_public_key: v.public_key,
        iccid: profile.iccid.clone(),
        cc_required,
        smdp_signature2: signature2.clone(),
        euicc_otpk: None,
    };
    if let Err(e) = session.record.authenticate(binding, now) {
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
        Ok(AuthenticateClientResponse {
            header: ResponseHeader::success(),
            transaction_id: v.tid.clone(),
            profile_metadata: Base64(metadata),
            smdp_signed2: Base64(signed2_der),
            smdp_signature2: Base64(signature2),
            smdp_certificate: Base64(cfg.dppb.certificate.der().to_vec()),
        }),
    )
}

/// A refusal by the order rules: the profile (`read`, now `profile`) is
/// written when the rule produced events (a counted attempt, an ended order,
/// an event for the operator), so the events and the state they describe
/// commit together.
pub(super) fn refused_with<A>(
    read: Versioned<ProfileRecord>,
    profile: ProfileRecord,
    events: Vec<crate::order::ProgressEvent>,
    error: Es9Error,
) -> Outcome<A, Es9Error> {
    if events.is_empty() {
        return Outcome::refuse(error);
    }
    let changes = Changes {
        profile: Some(ProfileWrite::new(read, profile)),
        events,
        ..Changes::default()
    };
    Outcome::new(changes, Err(error))
}

/// smdpSigned2 for the session and its signature by DPpb, over
/// `smdpSigned2 || 5F37 euiccSignature1` (as a 5F37 TLV).
fn sign_smdp_signed2(
    cfg: &SmdpConfig,
    tid: &TransactionId,
    cc_required: bool,
    signature1_tlv: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Es9Error> {
    let signed2 = rsp::SmdpSigned2::new(
        rsp::TransactionId(OctetString::from_slice(tid.as_bytes())),
        cc_required,
        None,
    );
    let signed2_der = encode_der(&signed2).map_err(|e| Es9Error::Internal(e.to_string()))?;
    let mut to_sign = Vec::with_capacity(signed2_der.len() + signature1_tlv.len());
    to_sign.extend_from_slice(&signed2_der);
    to_sign.extend_from_slice(signature1_tlv);
    let sig = cfg
        .dppb
        .key
        .sign_raw(&to_sign)
        .map_err(|e| Es9Error::Internal(format!("DPpb signing failed: {e}")))?;
    let sig_tlv = wrap_5f37(&sig).map_err(|e| Es9Error::Internal(e.to_string()))?;
    Ok((signed2_der, sig_tlv))
}

impl<S: Store> Smdp<S> {
    /// Authenticates the eUICC and binds its order: loads the session and
    /// the order, runs [`authenticate_client`], commits.
    pub async fn authenticate_client(
        &self,
        req: &AuthenticateClientRequest,
        now: Timestamp,
    ) -> Result<AuthenticateClientResponse, Es9Error> {
        let (tid, selector) = authenticate_client_loads(req)?;
        for _ in 0..ATTEMPTS {
            let StepRecords {
                session, profile, ..
            } = self
                .store
                .session_and_profile(&tid, selector.as_ref())
                .await?;
            let template = self.step_template(profile.as_ref(), now).await?;
            let outcome = authenticate_client(
                &self.config,
                req,
                session,
                profile,
                template.as_deref(),
                now,
            );
            if let Some(answer) = self.settle(outcome).await? {
                info!(transaction_id = %tid, "eUICC authenticated, order bound");
                debug!(selector = ?selector.as_ref().map(selector_kind), "order selected");
                return Ok(answer);
            }
        }
        Err(Es9Error::Store(StoreError::Stale))
    }
}

fn selector_kind(s: &ProfileSelector) -> &'static str {
    match s {
        ProfileSelector::Iccid(..) => "iccid",
        ProfileSelector::MatchingId(_) => "matching id",
        ProfileSelector::ReleasedForEid(_) => "released for EID",
    }
}

/// The eUICC and EUM certificates of an AuthenticateServerResponse, as received.
fn certificates(bytes: &[u8]) -> Result<(&[u8], &[u8]), Es9Error> {
    let bad = |e: ferrosim_asn1::tlv::TlvError| {
        Es9Error::BadRequest(format!("authenticateServerResponse: {e}"))
    };
    let outer = Tlv::parse_exact(bytes).map_err(bad)?;
    let ok = outer.require(0xA0).map_err(bad)?;
    let mut certs = ok
        .children()
        .filter_map(Result::ok)
        .filter(|t| t.tag == 0x30)
        .skip(1)
        .map(|t| t.raw);
    match (certs.next(), certs.next()) {
        (Some(euicc), Some(eum)) => Ok((euicc, eum)),
        _ => Err(Es9Error::BadRequest(
            "authenticateServerResponse lacks certificates".into(),
        )),
    }
}

/// The fields of an AuthenticateServerResponse (BF38) the SM-DP+ acts on,
/// read by tag from the received bytes.
struct EuiccSigned1Fields {
    /// `None` when the signed bytes hold no valid transaction id (1 to 16
    /// octets): then it matches no session.
    transaction_id: Option<TransactionId>,
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
            transaction_id: TransactionId::from_bytes(signed1.require(0x80).map_err(tlv)?.value)
                .ok(),
            server_address: utf8(signed1.require(0x83).map_err(tlv)?)?,
            server_challenge: signed1.require(0x84).map_err(tlv)?.value.to_vec(),
            matching_id: ctx.find(0x80).map_err(tlv)?.map(utf8).transpose()?,
        })
    }
}
