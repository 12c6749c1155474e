//! A virtual eUICC with CRL support (SGP.22 `crlSupport`): it says so in
//! EUICCInfo2, takes CRLs through ES10b.LoadCRL (BF35) and then refuses a
//! revoked DPauth at AuthenticateServer with invalidCertificate; LoadCRL
//! answers garbage, another CA's CRL and an older CRL with their
//! LoadCRLResponseError codes; a card without CRL support does not know the
//! command.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{FakeSmdp, challenge, es10, es10_sw, open_isdr, other_pki, pki};
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::{decode_der, rsp};
use ferrosim_euicc::codes::AuthenticateErrorCode;
use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_pki::crl::issue::CrlRequest;
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::crl::{CrlNumber, CrlScope, RevokedEntry};
use ferrosim_pki::{StalePolicy, TestPki};

fn crl(pki: &TestPki, number: u128, entries: Vec<RevokedEntry>) -> Vec<u8> {
    let now = SystemTime::now();
    pki.issue_crl(
        CrlIssuer::Ci,
        &CrlRequest {
            number: CrlNumber::new(number),
            this_update: now - Duration::from_secs(60),
            next_update: now + Duration::from_secs(7 * 86_400),
            entries,
            scope: CrlScope::default(),
        },
    )
    .unwrap()
    .der()
    .to_vec()
}

fn crl_card() -> VirtualEuicc {
    let pki = pki();
    let shared = SharedIdentity::with_crl_support(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
        StalePolicy::Refuse,
    )
    .unwrap();
    assert!(shared.supports_crls());
    let euicc = &pki.euiccs[0];
    let identity = EuiccIdentity::with_shared(
        shared,
        euicc.certificate.der(),
        Arc::new(euicc.signing_key().unwrap()),
    )
    .unwrap();
    VirtualEuicc::new(identity, EuiccState::default())
}

/// AuthenticateServer with a fresh challenge: Ok(rspCapability bits) or the error code.
fn authenticate(card: &mut VirtualEuicc, ch: u8) -> Result<Vec<u8>, AuthenticateErrorCode> {
    let server = FakeSmdp::new(pki());
    let c = challenge(card, ch);
    let response = es10(card, ch, &server.authenticate_server(&c));
    match decode_der::<rsp::AuthenticateServerResponse>(&response).unwrap() {
        rsp::AuthenticateServerResponse::authenticateResponseOk(ok) => Ok(ok
            .euicc_signed1
            .euicc_info2
            .rsp_capability
            .0
            .as_raw_slice()
            .to_vec()),
        rsp::AuthenticateServerResponse::authenticateResponseError(e) => Err(
            AuthenticateErrorCode::from_code(i64::try_from(&e.authenticate_error_code.0).unwrap())
                .unwrap(),
        ),
        other => panic!("{other:?}"),
    }
}

/// LoadCRL: Ok(missing parts) or Err(LoadCRLResponseError code).
fn load_crl(card: &mut VirtualEuicc, ch: u8, crl_der: &[u8]) -> Result<Vec<i64>, i64> {
    let response = es10(card, ch, &tlv(0xBF35, crl_der));
    match decode_der::<rsp::LoadCRLResponse>(&response).unwrap() {
        rsp::LoadCRLResponse::loadCRLResponseOk(ok) => Ok(ok
            .missing_parts
            .unwrap_or_default()
            .iter()
            .map(|p| i64::try_from(p).unwrap())
            .collect()),
        rsp::LoadCRLResponse::loadCRLResponseError(e) => Err(i64::try_from(&e.0).unwrap()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_revoked_dpauth_is_refused_after_load_crl() {
    let pki = pki();
    let mut card = crl_card();
    let ch = open_isdr(&mut card);
    // No CRL yet: the SM-DP+ is accepted (and its verification cached);
    // EUICCInfo2 names crlSupport (bit 1).
    let capability = authenticate(&mut card, ch).unwrap();
    assert_ne!(capability[0] & 0x40, 0, "crlSupport: {capability:02X?}");

    // A CI CRL not listing DPauth: still accepted.
    assert_eq!(load_crl(&mut card, ch, &crl(pki, 1, vec![])), Ok(vec![]));
    authenticate(&mut card, ch).unwrap();

    // The CI revokes DPauth.
    let revoking = crl(
        pki,
        2,
        vec![entry(
            pki.dp_auth.certificate.serial_number().to_vec(),
            SystemTime::now(),
            None,
        )],
    );
    assert_eq!(load_crl(&mut card, ch, &revoking), Ok(vec![]));
    assert_eq!(
        authenticate(&mut card, ch),
        Err(AuthenticateErrorCode::InvalidCertificate)
    );

    // Errors: garbage (invalidCRLFormat 2), an older CRL (fresherCrlAlreadyLoaded
    // 5), another CI's CRL (verificationKeyNotFound 4), a forged signature
    // (invalidSignature 1). The CRL in force stays.
    assert_eq!(load_crl(&mut card, ch, b"\x30\x03\x02\x01\x00"), Err(2));
    assert_eq!(load_crl(&mut card, ch, &crl(pki, 1, vec![])), Err(5));
    assert_eq!(
        load_crl(&mut card, ch, &crl(other_pki(), 9, vec![])),
        Err(4)
    );
    let mut forged = crl(pki, 3, vec![]);
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    assert_eq!(load_crl(&mut card, ch, &forged), Err(1));
    assert_eq!(
        authenticate(&mut card, ch),
        Err(AuthenticateErrorCode::InvalidCertificate)
    );
}

#[test]
fn a_card_without_crl_support_does_not_know_load_crl() {
    let mut card = common::card();
    let ch = open_isdr(&mut card);
    let capability = authenticate(&mut card, ch).unwrap();
    assert_eq!(capability[0] & 0x40, 0, "{capability:02X?}");
    let (_, sw) = es10_sw(&mut card, ch, &tlv(0xBF35, &crl(pki(), 1, vec![])), 120);
    assert_eq!(sw, 0x6A88);
    // And it keeps authenticating the SM-DP+ as before.
    authenticate(&mut card, ch).unwrap();
}
