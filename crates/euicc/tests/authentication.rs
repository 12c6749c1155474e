//! The eUICC verifies the SM-DP+ as a real one does: every certificate,
//! signature, challenge, transaction id and one-time key, each failure
//! answered with the error code SGP.22 gives it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    FakeSmdp, authenticate_server_request, card, challenge, ctx_params1, es10, es10_sw, fixture,
    load_bpp, open_isdr, other_pki, pir_result, pki, prepare_download_request,
};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_crypto::key::KeySource;
use ferrosim_euicc::VirtualEuicc;
use ferrosim_euicc::codes::{AuthenticateErrorCode, DownloadErrorCode};
use ferrosim_smdp::metadata::PolicyRules;

/// The AuthenticateServerResponse: Ok(euiccSigned1) or Err(code).
fn auth_outcome(response: &[u8]) -> Result<rsp::EuiccSigned1, AuthenticateErrorCode> {
    match decode_der::<rsp::AuthenticateServerResponse>(response).unwrap() {
        rsp::AuthenticateServerResponse::authenticateResponseOk(ok) => Ok(ok.euicc_signed1),
        rsp::AuthenticateServerResponse::authenticateResponseError(e) => Err(
            AuthenticateErrorCode::from_code(i64::try_from(&e.authenticate_error_code.0).unwrap())
                .unwrap(),
        ),
        other => panic!("{other:?}"),
    }
}

fn download_outcome(response: &[u8]) -> Result<rsp::EUICCSigned2, DownloadErrorCode> {
    match decode_der::<rsp::PrepareDownloadResponse>(response).unwrap() {
        rsp::PrepareDownloadResponse::downloadResponseOk(ok) => Ok(ok.euicc_signed2),
        rsp::PrepareDownloadResponse::downloadResponseError(e) => Err(
            DownloadErrorCode::from_code(i64::try_from(&e.download_error_code.0).unwrap()).unwrap(),
        ),
        other => panic!("{other:?}"),
    }
}

/// A card with an RSP session authenticated by `server`; returns the channel
/// and the AuthenticateServerResponse.
fn authenticated(card: &mut VirtualEuicc, server: &FakeSmdp) -> (u8, Vec<u8>) {
    let ch = open_isdr(card);
    let c = challenge(card, ch);
    let response = es10(card, ch, &server.authenticate_server(&c));
    assert!(auth_outcome(&response).is_ok());
    (ch, response)
}

#[test]
fn a_genuine_smdp_is_authenticated_and_the_answer_is_signed() {
    let mut card = card();
    let server = FakeSmdp::new(pki());
    let ch = open_isdr(&mut card);
    let c = challenge(&mut card, ch);
    let request = server.authenticate_server(&c);
    let response = es10(&mut card, ch, &request);
    let euicc_signed1 = auth_outcome(&response).unwrap();
    assert_eq!(
        euicc_signed1.transaction_id.0.as_ref(),
        server.transaction_id.as_slice()
    );
    assert_eq!(euicc_signed1.server_address, server.address);
    assert_eq!(euicc_signed1.server_challenge.0.as_ref(), &[0x5A; 16]);
    let info2 = &euicc_signed1.euicc_info2;
    assert_eq!(info2.svn.0.as_ref(), &[2, 2, 2]);
    // ctxParams1 is signed exactly as the LPA sent it.
    let ctx = ctx_params1(Some("MATCHING-ID-1"));
    let parts = signed::euicc_signed1(&response).unwrap();
    assert!(parts.signed.ends_with(&ctx));
    card.identity()
        .euicc_certificate()
        .unwrap()
        .verifying_key()
        .verify_raw(parts.signed, parts.signature)
        .expect("euiccSignature1 verifies");
    // The eUICC and EUM certificates follow, as issued.
    let outer = Tlv::parse_exact(&response).unwrap();
    let ok = outer.require(0xA0).unwrap();
    let certs: Vec<&[u8]> = ok.children().skip(2).map(|c| c.unwrap().raw).collect();
    assert_eq!(
        certs,
        [
            pki().euiccs[0].certificate.der(),
            pki().eum.certificate.der()
        ]
    );
}

#[test]
fn authenticate_server_failures() {
    let server = FakeSmdp::new(pki());
    let stranger = FakeSmdp::new(other_pki());

    // No GetEuiccChallenge before.
    let mut c = card();
    let ch = open_isdr(&mut c);
    let response = es10(&mut c, ch, &server.authenticate_server(&[7; 16]));
    assert_eq!(
        auth_outcome(&response).err(),
        Some(AuthenticateErrorCode::NoSessionContext)
    );
    // BF38 { A1 authenticateResponseError { 80 transactionId, 02 code } }.
    let mut expected = vec![0xBF, 0x38, 0x0F, 0xA1, 0x0D, 0x80, 0x08];
    expected.extend_from_slice(&server.transaction_id);
    expected.extend_from_slice(&[0x02, 0x01, 0x04]);
    assert_eq!(response, expected);

    // Another challenge than ours.
    let mine = challenge(&mut c, ch);
    let mut other = mine;
    other[0] ^= 1;
    let response = es10(&mut c, ch, &server.authenticate_server(&other));
    assert_eq!(
        auth_outcome(&response).err(),
        Some(AuthenticateErrorCode::EuiccChallengeMismatch)
    );
    // The failure ended the session: even the right challenge is now refused.
    let response = es10(&mut c, ch, &server.authenticate_server(&mine));
    assert_eq!(
        auth_outcome(&response).err(),
        Some(AuthenticateErrorCode::NoSessionContext)
    );

    let check = |request: &dyn Fn(&[u8; 16]) -> Vec<u8>, expected| {
        let mut c = card();
        let ch = open_isdr(&mut c);
        let chal = challenge(&mut c, ch);
        let response = es10(&mut c, ch, &request(&chal));
        assert_eq!(auth_outcome(&response).err(), Some(expected));
        // The transaction id of the refusal is the server's.
        let decoded: rsp::AuthenticateServerResponse = decode_der(&response).unwrap();
        if let rsp::AuthenticateServerResponse::authenticateResponseError(e) = decoded {
            assert_eq!(
                e.transaction_id.0.as_ref(),
                server.transaction_id.as_slice()
            );
        }
    };

    // An SM-DP+ certified by a CI this eUICC does not know.
    check(
        &|chal| stranger.authenticate_server(chal),
        AuthenticateErrorCode::CiPkUnknown,
    );
    // ... claiming to use our CI.
    check(
        &|chal| {
            let (signed1, sig) = stranger.server_signed1(chal, SMDP_ADDRESS);
            authenticate_server_request(
                &signed1,
                &sig,
                &server.ci_pkid(),
                other_pki().dp_auth.certificate.der(),
                &ctx_params1(None),
            )
        },
        AuthenticateErrorCode::InvalidCertificate,
    );
    // A DPpb certificate presented for authentication.
    check(
        &|chal| {
            let (signed1, sig) = server.server_signed1(chal, SMDP_ADDRESS);
            authenticate_server_request(
                &signed1,
                &sig,
                &server.ci_pkid(),
                pki().dp_pb.certificate.der(),
                &ctx_params1(None),
            )
        },
        AuthenticateErrorCode::InvalidOid,
    );
    // serverSigned1 changed after signing: another server address.
    check(
        &|chal| {
            let (_, sig) = server.server_signed1(chal, SMDP_ADDRESS);
            let (forged, _) = server.server_signed1(chal, "evil.example.com");
            authenticate_server_request(
                &forged,
                &sig,
                &server.ci_pkid(),
                pki().dp_auth.certificate.der(),
                &ctx_params1(None),
            )
        },
        AuthenticateErrorCode::InvalidSignature,
    );
    // Signed by another key than the certificate's.
    check(
        &|chal| {
            let (signed1, _) = server.server_signed1(chal, SMDP_ADDRESS);
            let sig = wrap_5f37(
                &other_pki()
                    .dp_auth
                    .signing_key()
                    .unwrap()
                    .sign_raw(&signed1)
                    .unwrap(),
            )
            .unwrap();
            authenticate_server_request(
                &signed1,
                &sig,
                &server.ci_pkid(),
                pki().dp_auth.certificate.der(),
                &ctx_params1(None),
            )
        },
        AuthenticateErrorCode::InvalidSignature,
    );
    // A server address that is no address (signed, so only the eUICC can object).
    check(
        &|chal| {
            let (signed1, sig) = server.server_signed1(chal, "");
            authenticate_server_request(
                &signed1,
                &sig,
                &server.ci_pkid(),
                pki().dp_auth.certificate.der(),
                &ctx_params1(None),
            )
        },
        AuthenticateErrorCode::UndefinedError,
    );
}

const SMDP_ADDRESS: &str = common::SMDP_ADDRESS;

#[test]
fn the_signed_server_address_is_the_one_the_euicc_signs() {
    // An SM-DP+ that signs another address than the LPA used gets that
    // address back in euiccSigned1, under the eUICC's signature: the real
    // SM-DP+ refuses euiccSigned1 naming another address than its own.
    let mut card = card();
    let mut server = FakeSmdp::new(pki());
    server.address = "other-smdp.example.net:8443".into();
    let ch = open_isdr(&mut card);
    let c = challenge(&mut card, ch);
    let response = es10(&mut card, ch, &server.authenticate_server(&c));
    let signed1 = auth_outcome(&response).unwrap();
    assert_eq!(signed1.server_address, "other-smdp.example.net:8443");
}

#[test]
fn malformed_authenticate_server_requests_are_6a80() {
    let mut c = card();
    let ch = open_isdr(&mut c);
    let chal = challenge(&mut c, ch);
    let server = FakeSmdp::new(pki());
    let good = server.authenticate_server(&chal);
    let outer = Tlv::parse_exact(&good).unwrap();
    let children: Vec<&[u8]> = outer.children().map(|t| t.unwrap().raw).collect();
    // A missing ctxParams1, a missing certificate, swapped elements.
    for parts in [
        children[..4].to_vec(),
        [&children[..3], &children[4..]].concat(),
        vec![
            children[1],
            children[0],
            children[2],
            children[3],
            children[4],
        ],
    ] {
        let request = tlv(0xBF38, &parts.concat());
        assert_eq!(es10_sw(&mut c, ch, &request, 255).1, 0x6A80);
    }
}

#[test]
fn prepare_download_binds_with_a_one_time_key() {
    let mut card = card();
    let server = FakeSmdp::new(pki());
    let (ch, auth) = authenticated(&mut card, &server);
    let request = server.prepare_download(&auth, &server.transaction_id, None);
    let response = es10(&mut card, ch, &request);
    let signed2 = download_outcome(&response).unwrap();
    assert_eq!(
        signed2.transaction_id.0.as_ref(),
        server.transaction_id.as_slice()
    );
    assert_eq!(signed2.euicc_otpk.len(), 65);
    assert!(signed2.hash_cc.is_none());
    // euiccSignature2 covers euiccSigned2 || smdpSignature2 (whole TLV).
    let smdp_sig = signed::smdp_signed2(&request).unwrap();
    let parts = signed::euicc_signed2(&response).unwrap();
    card.identity()
        .euicc_certificate()
        .unwrap()
        .verifying_key()
        .verify_raw(
            &[parts.signed, smdp_sig.signature_tlv].concat(),
            parts.signature,
        )
        .expect("euiccSignature2 verifies");

    // With a confirmation code the hash the LPA computed is signed along.
    let mut card2 = common::card();
    let (ch2, auth2) = authenticated(&mut card2, &server);
    let hash = [0xC3; 32];
    let response = es10(
        &mut card2,
        ch2,
        &server.prepare_download(&auth2, &server.transaction_id, Some(&hash)),
    );
    assert_eq!(
        download_outcome(&response).unwrap().hash_cc.map(|h| *h.0),
        Some(hash)
    );
}

#[test]
fn prepare_download_failures() {
    let server = FakeSmdp::new(pki());
    let stranger = FakeSmdp::new(other_pki());

    // Without AuthenticateServer.
    let mut c = card();
    let ch = open_isdr(&mut c);
    let _ = challenge(&mut c, ch);
    let mut other = card();
    let (_, foreign_auth) = authenticated(&mut other, &server);
    let response = es10(
        &mut c,
        ch,
        &server.prepare_download(&foreign_auth, &server.transaction_id, None),
    );
    assert_eq!(
        download_outcome(&response).err(),
        Some(DownloadErrorCode::NoSessionContext)
    );

    type Build<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;
    let check = |build: Build<'_>, expected| {
        let mut c = card();
        let (ch, auth) = authenticated(&mut c, &server);
        let response = es10(&mut c, ch, &build(&auth));
        assert_eq!(download_outcome(&response).err(), Some(expected));
        // The session is over after a refusal.
        let again = es10(
            &mut c,
            ch,
            &server.prepare_download(&auth, &server.transaction_id, None),
        );
        assert_eq!(
            download_outcome(&again).err(),
            Some(DownloadErrorCode::NoSessionContext)
        );
    };
    // Another transaction id (validly signed).
    check(
        &|auth| server.prepare_download(auth, &[0x99; 8], None),
        DownloadErrorCode::InvalidTransactionId,
    );
    // A DPpb certificate of a CI we do not trust.
    check(
        &|auth| stranger.prepare_download(auth, &server.transaction_id, None),
        DownloadErrorCode::InvalidCertificate,
    );
    // The DPauth certificate presented as DPpb.
    check(
        &|auth| {
            let good = server.prepare_download(auth, &server.transaction_id, None);
            let parts = signed::smdp_signed2(&good).unwrap();
            prepare_download_request(
                parts.signed,
                parts.signature_tlv,
                None,
                pki().dp_auth.certificate.der(),
            )
        },
        DownloadErrorCode::InvalidCertificate,
    );
    // smdpSignature2 not over this session's euiccSignature1.
    check(
        &|_| {
            let mut other = card();
            let (_, other_auth) = authenticated(&mut other, &server);
            server.prepare_download(&other_auth, &server.transaction_id, None)
        },
        DownloadErrorCode::InvalidSignature,
    );
    // A confirmation code required but no hash given.
    check(
        &|auth| {
            let with_cc = server.prepare_download(auth, &server.transaction_id, Some(&[1; 32]));
            let outer = Tlv::parse_exact(&with_cc).unwrap();
            let parts: Vec<&[u8]> = outer
                .children()
                .map(|t| t.unwrap().raw)
                .filter(|raw| raw[0] != 0x04)
                .collect();
            tlv(0xBF21, &parts.concat())
        },
        DownloadErrorCode::UndefinedError,
    );
}

#[test]
fn bound_profile_package_failures() {
    let server = FakeSmdp::new(pki());
    let (package, _) = fixture();
    let metadata = server.metadata(&package, PolicyRules::default());

    // A package for another transaction (signed correctly).
    let outcome = |tid: &[u8], otpk_of_other_session: bool, metadata: &[u8], package: &[u8]| {
        let mut c = card();
        let (ch, auth) = authenticated(&mut c, &server);
        let prepared = es10(
            &mut c,
            ch,
            &server.prepare_download(&auth, &server.transaction_id, None),
        );
        let prepared = if otpk_of_other_session {
            let mut other = card();
            let (och, oauth) = authenticated(&mut other, &server);
            es10(
                &mut other,
                och,
                &server.prepare_download(&oauth, &server.transaction_id, None),
            )
        } else {
            prepared
        };
        let eid = c.identity().eid().to_bcd();
        let bpp = server.bpp(tid, &eid, &prepared, metadata, package);
        let (pir, pieces) = load_bpp(&mut c, ch, &bpp);
        common::verify_pir(&c, &pir);
        assert!(c.state().profiles.is_empty());
        (pir_result(&pir), pieces)
    };
    // initialiseSecureChannel / invalidTransactionId, on the first piece.
    assert_eq!(
        outcome(&[0x99; 8], false, &metadata, &package),
        (Err((0, 3)), 1)
    );
    // initialiseSecureChannel / invalidSignature: bound to another one-time key.
    assert_eq!(
        outcome(&server.transaction_id, true, &metadata, &package).0,
        Err((0, 2))
    );
    // loadProfileElements / installFailedDueToDataMismatch: the metadata
    // names another ICCID than the package.
    let other_iccid = ferrosim_saip::Iccid::from_body("894944000000000099").unwrap();
    let other_metadata = ferrosim_smdp::metadata::store_metadata_der(
        &other_iccid,
        &common::type_metadata(PolicyRules::default()),
        SMDP_ADDRESS,
    )
    .unwrap();
    assert_eq!(
        outcome(&server.transaction_id, false, &other_metadata, &package).0,
        Err((5, 13))
    );
    // loadProfileElements / installFailedDueToPEProcessingError: not a package.
    let (result, _) = outcome(
        &server.transaction_id,
        false,
        &metadata,
        &package[..package.len() - 3],
    );
    assert_eq!(result, Err((5, 12)));
}

#[test]
fn a_package_bound_earlier_can_be_loaded_in_a_new_session() {
    // PrepareDownload with bppEuiccOtpk reuses the one-time key the package
    // was bound to (the LPA lost the connection after getBoundProfilePackage).
    let server = FakeSmdp::new(pki());
    let (package, _) = fixture();
    let metadata = server.metadata(&package, PolicyRules::default());
    let mut c = card();
    let (ch, auth) = authenticated(&mut c, &server);
    let prepared = es10(
        &mut c,
        ch,
        &server.prepare_download(&auth, &server.transaction_id, None),
    );
    let first = download_outcome(&prepared).unwrap();
    let eid = c.identity().eid().to_bcd();
    let bpp = server.bpp(&server.transaction_id, &eid, &prepared, &metadata, &package);

    // New session, same transaction id, smdpSigned2 naming the bound key.
    let _ = challenge(&mut c, ch);
    let c2 = challenge(&mut c, ch);
    let auth2 = es10(&mut c, ch, &server.authenticate_server(&c2));
    let sig1 = signed::euicc_signed1(&auth2).unwrap();
    let signed2 = ferrosim_asn1::encode_der(&rsp::SmdpSigned2::new(
        rsp::TransactionId(server.transaction_id.clone().into()),
        false,
        Some(first.euicc_otpk.clone()),
    ))
    .unwrap();
    let dppb = pki().dp_pb.signing_key().unwrap();
    let sig2 = wrap_5f37(
        &dppb
            .sign_raw(&[signed2.as_slice(), sig1.signature_tlv].concat())
            .unwrap(),
    )
    .unwrap();
    let request = prepare_download_request(&signed2, &sig2, None, pki().dp_pb.certificate.der());
    let second = download_outcome(&es10(&mut c, ch, &request)).unwrap();
    assert_eq!(second.euicc_otpk, first.euicc_otpk);
    let (pir, _) = load_bpp(&mut c, ch, &bpp);
    assert!(pir_result(&pir).is_ok());
    assert_eq!(c.state().profiles.len(), 1);
}

#[test]
fn cancel_session_is_signed_and_ends_the_session() {
    let server = FakeSmdp::new(pki());
    let mut c = card();
    // No session: invalidTransactionId.
    let ch = open_isdr(&mut c);
    let cancel = |tid: &[u8], reason: i64| {
        ferrosim_asn1::encode_der(&rsp::CancelSessionRequest::new(
            rsp::TransactionId(tid.to_vec().into()),
            rsp::CancelSessionReason(reason.into()),
        ))
        .unwrap()
    };
    assert_eq!(
        es10(&mut c, ch, &cancel(&server.transaction_id, 0)),
        [0xBF, 0x41, 0x03, 0x81, 0x01, 0x05]
    );
    let (ch, _) = authenticated(&mut c, &server);
    assert_eq!(
        es10(&mut c, ch, &cancel(&[1, 2], 0)),
        [0xBF, 0x41, 0x03, 0x81, 0x01, 0x05]
    );
    let response = es10(&mut c, ch, &cancel(&server.transaction_id, 4));
    let decoded: rsp::CancelSessionResponse = decode_der(&response).unwrap();
    let rsp::CancelSessionResponse::cancelSessionResponseOk(ok) = decoded else {
        panic!("{decoded:?}");
    };
    let s = &ok.euicc_cancel_session_signed;
    assert_eq!(
        s.transaction_id.0.as_ref(),
        server.transaction_id.as_slice()
    );
    assert_eq!(i64::try_from(&s.reason.0).unwrap(), 4);
    let oid: Vec<String> = s.smdp_oid.iter().map(u32::to_string).collect();
    assert_eq!(oid.join("."), ferrosim_pki::generate::DEFAULT_SMDP_OID);
    let outer = Tlv::parse_exact(&response).unwrap();
    let ok = outer.require(0xA0).unwrap();
    let signed = ok.require(0x30).unwrap();
    let signature = ok.require(0x5F37).unwrap();
    c.identity()
        .euicc_certificate()
        .unwrap()
        .verifying_key()
        .verify_raw(signed.raw, signature.value)
        .expect("euiccCancelSessionSignature verifies");
    // Ended: PrepareDownload now has no session.
    let mut other = card();
    let (_, auth) = authenticated(&mut other, &server);
    let response = es10(
        &mut c,
        ch,
        &server.prepare_download(&auth, &server.transaction_id, None),
    );
    assert_eq!(
        download_outcome(&response).err(),
        Some(DownloadErrorCode::NoSessionContext)
    );
}

/// With the same seeded generator, two cards draw the same challenge and
/// the same one-time key; only the ECDSA signatures (aws-lc's own
/// randomness) differ.
#[test]
fn a_seeded_generator_replays_the_challenge_and_the_one_time_key() {
    use rand::SeedableRng;
    let server = FakeSmdp::new(pki());
    let run = |seed: u64| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut card = card();
        let ch = open_isdr(&mut card);
        let answer = common::es10_with_rng(&mut card, ch, &[0xBF, 0x2E, 0x00], &mut rng);
        let challenge: rsp::GetEuiccChallengeResponse = decode_der(&answer).unwrap();
        let challenge = *challenge.euicc_challenge.0;
        let auth = common::es10_with_rng(
            &mut card,
            ch,
            &server.authenticate_server(&challenge),
            &mut rng,
        );
        let request = server.prepare_download(&auth, &server.transaction_id, None);
        let prepared = common::es10_with_rng(&mut card, ch, &request, &mut rng);
        let signed2 = download_outcome(&prepared).unwrap();
        let signature = signed::euicc_signed2(&prepared).unwrap().signature.to_vec();
        (challenge, signed2.euicc_otpk.to_vec(), signature)
    };
    let (c1, otpk1, sig1) = run(7);
    let (c2, otpk2, sig2) = run(7);
    let (c3, otpk3, _) = run(8);
    assert_eq!((c1, &otpk1), (c2, &otpk2));
    assert_ne!(sig1, sig2, "ECDSA signatures are randomised by aws-lc");
    assert_ne!(c1, c3);
    assert_ne!(otpk1, otpk3);
}
