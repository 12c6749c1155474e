//! Every ES9+ function of the SM-DP+ on the in-memory store, without a
//! server: the happy path and each status code the HTTPS tests cover
//! (`ferrosim-server`'s download_https and es9_garbage, `ferrosim-lpa`'s
//! inprocess), and the records and events each one leaves behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es9::*;
use ferrosim_asn1::values::{CancelSessionReason, NotificationOperation};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_saip::Iccid;
use ferrosim_smdp::Es9Error;
use ferrosim_smdp::es9::NotificationHandled;
use ferrosim_smdp::order::{NotificationPoint, ProfileState};
use ferrosim_smdp::session::SessionState;
use ferrosim_smdp::status::StatusCode;
use ferrosim_smdp::store::{CatalogStore, OutboxStore, SessionStore};
use support::*;

/// A device authenticated against an order: what the later steps start from.
struct Authenticated {
    device: Device,
    iccid: Iccid,
    request: AuthenticateClientRequest,
    auth: AuthenticateClientResponse,
}

async fn authenticated(
    world: &World,
    pki: &ferrosim_pki::TestPki,
    code: Option<&str>,
) -> Authenticated {
    let device = Device::new(pki, 0);
    let (iccid, matching_id) = world.order(None, code).await;
    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let request = device.authenticate(&init, Some(&matching_id));
    let auth = world.smdp.authenticate_client(&request, NOW).await.unwrap();
    Authenticated {
        device,
        iccid,
        request,
        auth,
    }
}

async fn session_state(world: &World, tid: &ferrosim_smdp::ids::TransactionId) -> SessionState {
    world
        .store
        .session(tid)
        .await
        .unwrap()
        .unwrap()
        .record
        .state()
}

/// The notification points of the events queued so far (claims them).
async fn events(world: &World) -> Vec<(i64, Option<StatusCode>)> {
    world
        .store
        .queued_callbacks()
        .into_iter()
        .map(|c| (c.event.point.id(), c.event.failure))
        .collect()
}

#[tokio::test]
async fn initiate_authentication_signs_and_opens_a_session() {
    let pki = pki(1);
    let world = World::new(&pki, 1).await;
    let device = Device::new(&pki, 0);
    let init = world
        .smdp
        .initiate_authentication(&device.initiate(&ADDRESS.to_uppercase()), NOW)
        .await
        .unwrap();
    assert_eq!(init.transaction_id.as_bytes().len(), 16);
    // serverSigned1 echoes the eUICC's challenge and verifies with DPauth.
    let signed1: ferrosim_asn1::rsp::ServerSigned1 =
        ferrosim_asn1::decode_der(&init.server_signed1.0).unwrap();
    assert_eq!(signed1.euicc_challenge.0.as_ref(), device.challenge());
    assert_eq!(signed1.server_address, ADDRESS);
    let signature = ferrosim_crypto::ecdsa::unwrap_5f37(&init.server_signature1.0).unwrap();
    VerifyingKey::from_sec1(pki.dp_auth.certificate.public_key_sec1())
        .unwrap()
        .verify_raw(&init.server_signed1.0, signature)
        .unwrap();
    assert_eq!(init.server_certificate.0, pki.dp_auth.certificate.der());
    let ci = pki
        .ci
        .certificate
        .subject_key_id()
        .unwrap()
        .as_bytes()
        .to_vec();
    assert_eq!(
        init.euicc_ci_pkid_to_be_used.0,
        [&[0x04, 20][..], &ci].concat()
    );
    assert_eq!(
        session_state(&world, &init.transaction_id).await,
        SessionState::Initiated
    );
}

#[tokio::test]
async fn initiate_authentication_refusals() {
    let pki = pki(1);
    let world = World::new(&pki, 0).await;
    let device = Device::new(&pki, 0);
    let ci = pki
        .ci
        .certificate
        .subject_key_id()
        .unwrap()
        .as_bytes()
        .to_vec();
    let refuse = async |req: InitiateAuthenticationRequest| {
        status(
            &world
                .smdp
                .initiate_authentication(&req, NOW)
                .await
                .unwrap_err(),
        )
    };
    assert_eq!(
        refuse(device.initiate("other.example:443")).await,
        ("8.8.1", "3.8")
    );
    let unknown_ci = InitiateAuthenticationRequest {
        euicc_info1: Base64(device.info1([2, 2, 0], &[vec![1; 20]])),
        ..device.initiate(ADDRESS)
    };
    assert_eq!(refuse(unknown_ci).await, ("8.8.2", "3.1"));
    let old_svn = InitiateAuthenticationRequest {
        euicc_info1: Base64(device.info1([9, 0, 0], std::slice::from_ref(&ci))),
        ..device.initiate(ADDRESS)
    };
    assert_eq!(refuse(old_svn).await, ("8.8.3", "3.1"));
    let short = InitiateAuthenticationRequest {
        euicc_challenge: Base64(vec![7; 3]),
        ..device.initiate(ADDRESS)
    };
    assert_eq!(refuse(short).await, ("1.2", "2.1"));
    let garbage = InitiateAuthenticationRequest {
        euicc_info1: Base64(vec![0xBF, 0x20, 0x01]),
        ..device.initiate(ADDRESS)
    };
    assert_eq!(refuse(garbage).await, ("1.2", "2.1"));

    // An SM-DP+ whose DPauth certificate comes from a CI the eUICC does not know.
    let rogue = support::pki(1);
    let mut config = config(&rogue);
    config.trust = pki.trust_store().unwrap();
    let rogue_world = World::with_config(config, 0, ferrosim_smdp::Randomness::os()).await;
    let e = rogue_world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.8.4", "3.7"));
}

#[tokio::test]
async fn authenticate_client_binds_the_order_and_signs() {
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let a = authenticated(&world, &pki, None).await;
    // smdpSignature2 covers smdpSigned2 and euiccSignature1, by DPpb.
    let response = &a.request.authenticate_server_response.0;
    let signature1 = ferrosim_asn1::signed::euicc_signed1(response).unwrap();
    let covered = [
        a.auth.smdp_signed2.0.as_slice(),
        &ferrosim_crypto::ecdsa::wrap_5f37(signature1.signature).unwrap(),
    ]
    .concat();
    VerifyingKey::from_sec1(pki.dp_pb.certificate.public_key_sec1())
        .unwrap()
        .verify_5f37(&covered, &a.auth.smdp_signature2.0)
        .unwrap();
    assert_eq!(a.auth.smdp_certificate.0, pki.dp_pb.certificate.der());
    let metadata: ferrosim_asn1::rsp::StoreMetadataRequest =
        ferrosim_asn1::decode_der(&a.auth.profile_metadata.0).unwrap();
    assert_eq!(metadata.iccid.0.as_ref(), a.iccid.to_bcd());
    assert_eq!(metadata.profile_name, "TS.48");

    let p = world.profile(&a.iccid).await;
    let order = p.order.unwrap();
    assert_eq!(order.session.unwrap(), a.auth.transaction_id);
    assert_eq!(order.download_attempts, 1);
    assert_eq!(
        session_state(&world, &a.auth.transaction_id).await,
        SessionState::Authenticated
    );
    assert_eq!(events(&world).await, vec![(1, None)]);

    // The session is used up: a second authenticateClient on it is refused.
    let again = world
        .smdp
        .authenticate_client(&a.request, NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&again), ("8.10.1", "3.9"));
}

#[tokio::test]
async fn authenticate_client_without_matching_id_finds_the_eids_order() {
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let device = Device::new(&pki, 0);
    let (iccid, _) = world.order(Some(&device.eid), None).await;
    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let auth = world
        .smdp
        .authenticate_client(&device.authenticate(&init, None), NOW)
        .await
        .unwrap();
    let metadata: ferrosim_asn1::rsp::StoreMetadataRequest =
        ferrosim_asn1::decode_der(&auth.profile_metadata.0).unwrap();
    assert_eq!(metadata.iccid.0.as_ref(), iccid.to_bcd());
}

#[tokio::test]
async fn authenticate_client_refusals() {
    let pki = pki(2);
    let world = World::new(&pki, 4).await;
    let device = Device::new(&pki, 0);
    let (_, matching_id) = world.order(None, None).await;
    let init = async || {
        world
            .smdp
            .initiate_authentication(&device.initiate(ADDRESS), NOW)
            .await
            .unwrap()
    };
    let refuse = async |req: AuthenticateClientRequest| {
        status(&world.smdp.authenticate_client(&req, NOW).await.unwrap_err())
    };
    let signed1 = |i: &InitiateAuthenticationResponse| -> ferrosim_asn1::rsp::ServerSigned1 {
        ferrosim_asn1::decode_der(&i.server_signed1.0).unwrap()
    };

    // Unknown transaction, with a well-formed and with a malformed body.
    let i = init().await;
    let mut unknown = device.authenticate(&i, Some(&matching_id));
    unknown.transaction_id = "00112233".parse().unwrap();
    assert_eq!(refuse(unknown).await, ("8.10.1", "3.9"));
    let empty = AuthenticateClientRequest {
        transaction_id: "00112233".parse().unwrap(),
        authenticate_server_response: Base64(vec![0xBF, 0x38, 0x00]),
    };
    assert_eq!(refuse(empty).await.0, "1.2");
    // Unknown matching id.
    assert_eq!(
        refuse(device.authenticate(&i, Some("NO-SUCH-ORDER"))).await,
        ("8.2.6", "3.8")
    );
    // A tampered euiccSigned1: the signature no longer verifies.
    let i = init().await;
    let s = signed1(&i);
    let tampered = device.authenticate_with(
        &i.transaction_id,
        ADDRESS,
        s.server_challenge.0.as_ref(),
        Some(&matching_id),
        |bytes| {
            let mut b = bytes.to_vec();
            let last = b.len() - 1;
            b[last] ^= 1;
            b
        },
    );
    assert_eq!(refuse(tampered).await, ("8.1", "6.1"));
    // Another server challenge than ours.
    let i = init().await;
    let wrong_challenge = device.authenticate_with(
        &i.transaction_id,
        ADDRESS,
        &[0; 16],
        Some(&matching_id),
        <[u8]>::to_vec,
    );
    assert_eq!(refuse(wrong_challenge).await, ("8.1", "6.1"));
    // Signed for another SM-DP+ address.
    let i = init().await;
    let s = signed1(&i);
    let elsewhere = device.authenticate_with(
        &i.transaction_id,
        "elsewhere.example",
        s.server_challenge.0.as_ref(),
        Some(&matching_id),
        <[u8]>::to_vec,
    );
    assert_eq!(refuse(elsewhere).await, ("8.8.1", "3.8"));
    // The eUICC refused AuthenticateServer.
    let i = init().await;
    assert_eq!(
        refuse(device.authenticate_error(&i.transaction_id, 3)).await,
        ("8.1", "6.1")
    );
    // An eUICC of an EUM no trusted CI issued.
    let stranger_pki = support::pki(1);
    let stranger = Device::new(&stranger_pki, 0);
    let i = init().await;
    let foreign = stranger.authenticate(&i, Some(&matching_id));
    assert_eq!(refuse(foreign).await, ("8.11.1", "3.9"));

    // Nothing of that touched the order.
    let i = init().await;
    world
        .smdp
        .authenticate_client(&device.authenticate(&i, Some(&matching_id)), NOW)
        .await
        .unwrap();

    // An order linked to another EID.
    let other = Device::new(&pki, 1);
    let (_, linked) = world.order(Some(&other.eid), None).await;
    let i = init().await;
    assert_eq!(
        refuse(device.authenticate(&i, Some(&linked))).await,
        ("8.1.1", "3.8")
    );
    assert!(
        events(&world)
            .await
            .contains(&(1, Some(StatusCode::EID_REFUSED)))
    );
}

#[tokio::test]
async fn an_order_is_downloaded_once_and_expired_orders_are_refused() {
    let pki = pki(2);
    let world = World::new(&pki, 2).await;
    let a = authenticated(&world, &pki, None).await;
    let bpp = world
        .smdp
        .get_bound_profile_package(&a.device.prepare_download(&a.auth, None), NOW)
        .await
        .unwrap();
    assert!(!bpp.bound_profile_package.0.is_empty());
    // Another eUICC with the same matching id: the order is no longer released.
    let (_, _) = (a.iccid.clone(), ());
    let matching_id = world
        .profile(&a.iccid)
        .await
        .matching_id()
        .unwrap()
        .to_string();
    let second = Device::new(&pki, 1);
    let init = world
        .smdp
        .initiate_authentication(&second.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let e = world
        .smdp
        .authenticate_client(&second.authenticate(&init, Some(&matching_id)), NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.2.1", "3.7"));

    // An order whose time is up ends when a device comes for it.
    let (iccid, matching_id) = world.order(None, None).await;
    let later = NOW.plus(std::time::Duration::from_secs(31 * 24 * 3600));
    let init = world
        .smdp
        .initiate_authentication(&a.device.initiate(ADDRESS), later)
        .await
        .unwrap();
    let e = world
        .smdp
        .authenticate_client(&a.device.authenticate(&init, Some(&matching_id)), later)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.8.5", "4.10"));
    assert_eq!(world.profile(&iccid).await.state, ProfileState::Expired);
    assert!(
        events(&world)
            .await
            .contains(&(1, Some(StatusCode::DOWNLOAD_ORDER_EXPIRED)))
    );
}

#[tokio::test]
async fn get_bound_profile_package_delivers_the_personalised_profile() {
    let pki = pki(1);
    let world = World::new(&pki, 1).await;
    let a = authenticated(&world, &pki, None).await;
    let request = a.device.prepare_download(&a.auth, None);
    let answer = world
        .smdp
        .get_bound_profile_package(&request, NOW)
        .await
        .unwrap();
    let host_id = world.smdp.config().host_id.clone();
    let dppb = pki.dp_pb.certificate.public_key_sec1();
    let (tid, package) = a
        .device
        .open_bpp(&answer.bound_profile_package.0, &host_id, dppb)
        .unwrap();
    assert_eq!(hex::encode_upper(tid), a.auth.transaction_id.to_hex());
    assert_eq!(package, world.personalised(&a.iccid).await);
    assert_eq!(
        world.profile(&a.iccid).await.state,
        ProfileState::Downloaded
    );
    assert_eq!(
        session_state(&world, &a.auth.transaction_id).await,
        SessionState::PackageIssued
    );
    assert_eq!(events(&world).await, vec![(1, None), (3, None)]);

    // The same request again (the answer was lost): a fresh package, which opens too.
    let again = world
        .smdp
        .get_bound_profile_package(&request, NOW)
        .await
        .unwrap();
    assert_ne!(
        again.bound_profile_package.0,
        answer.bound_profile_package.0
    );
    let (_, package) = a
        .device
        .open_bpp(&again.bound_profile_package.0, &host_id, dppb)
        .unwrap();
    assert_eq!(package, world.personalised(&a.iccid).await);
}

#[tokio::test]
async fn confirmation_codes_are_checked_counted_and_lock_the_order() {
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let a = authenticated(&world, &pki, Some("4711")).await;
    let signed2: ferrosim_asn1::rsp::SmdpSigned2 =
        ferrosim_asn1::decode_der(&a.auth.smdp_signed2.0).unwrap();
    assert!(signed2.cc_required_flag);
    let get = async |code: Option<&str>| {
        world
            .smdp
            .get_bound_profile_package(&a.device.prepare_download(&a.auth, code), NOW)
            .await
    };
    assert_eq!(status(&get(None).await.unwrap_err()), ("8.2.7", "2.2"));
    for attempt in 1..=5 {
        let e = get(Some("0000")).await.unwrap_err();
        let expected = if attempt < 5 { "3.8" } else { "6.4" };
        assert_eq!(status(&e), ("8.2.7", expected), "attempt {attempt}");
        let p = world.profile(&a.iccid).await;
        let counted = p.order.as_ref().and_then(|o| o.confirmation.as_ref());
        if attempt < 5 {
            assert_eq!(counted.unwrap().failed_attempts, attempt);
        }
    }
    assert_eq!(world.profile(&a.iccid).await.state, ProfileState::Error);
    // Now even the right code is refused.
    assert!(get(Some("4711")).await.is_err());
    let points = events(&world).await;
    assert!(points.contains(&(2, Some(StatusCode::CONFIRMATION_CODE_RETRIES_EXCEEDED))));
    assert_eq!(
        points
            .iter()
            .filter(|p| **p == (2, Some(StatusCode::CONFIRMATION_CODE_REFUSED)))
            .count(),
        4
    );

    // The right code on a fresh order works.
    let b = authenticated(&world, &pki, Some("4711")).await;
    let bpp = world
        .smdp
        .get_bound_profile_package(&b.device.prepare_download(&b.auth, Some("4711")), NOW)
        .await
        .unwrap();
    assert!(!bpp.bound_profile_package.0.is_empty());
}

#[tokio::test]
async fn get_bound_profile_package_refusals() {
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let a = authenticated(&world, &pki, None).await;
    let refuse = async |req: GetBoundProfilePackageRequest| {
        status(
            &world
                .smdp
                .get_bound_profile_package(&req, NOW)
                .await
                .unwrap_err(),
        )
    };
    // euiccSignature2 over another smdpSignature2.
    let forged = a
        .device
        .prepare_download_signed(&a.auth, None, &[0x5F, 0x37, 0x01, 0x00]);
    assert_eq!(refuse(forged).await, ("8.1", "6.1"));
    // Unknown transaction; garbage.
    let mut unknown = a.device.prepare_download(&a.auth, None);
    unknown.transaction_id = "0011".parse().unwrap();
    assert_eq!(refuse(unknown).await, ("8.10.1", "3.9"));
    let garbage = GetBoundProfilePackageRequest {
        transaction_id: a.auth.transaction_id.clone(),
        prepare_download_response: Base64(vec![0xBF, 0x21, 0x01, 0x00]),
    };
    assert_eq!(refuse(garbage).await, ("1.2", "2.1"));
    // None of that changed the order.
    assert_eq!(world.profile(&a.iccid).await.state, ProfileState::Released);

    // The eUICC refused the binding: the session ends and so does the order.
    let e = world
        .smdp
        .get_bound_profile_package(&a.device.refuse_download(&a.auth.transaction_id, 2), NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.1", "6.1"));
    assert!(matches!(e, Es9Error::EuiccError { code: 2, .. }));
    assert_eq!(
        session_state(&world, &a.auth.transaction_id).await,
        SessionState::Cancelled
    );
    assert_eq!(
        refuse(a.device.prepare_download(&a.auth, None)).await,
        ("8.10.1", "3.9")
    );
}

#[tokio::test]
async fn handle_notification_records_the_installation() {
    let pki = pki(1);
    let world = World::new(&pki, 1).await;
    let a = authenticated(&world, &pki, None).await;
    world
        .smdp
        .get_bound_profile_package(&a.device.prepare_download(&a.auth, None), NOW)
        .await
        .unwrap();
    let oid = world.smdp.config().oid().clone();
    let pir = a
        .device
        .installation_result(&a.auth.transaction_id, &oid, &a.iccid, Ok(()));
    let handled = world.smdp.handle_notification(&pir, NOW).await.unwrap();
    assert!(matches!(handled, NotificationHandled::Recorded));
    assert_eq!(world.profile(&a.iccid).await.state, ProfileState::Installed);
    assert_eq!(
        session_state(&world, &a.auth.transaction_id).await,
        SessionState::Completed
    );
    let delivered = world.store.queued_callbacks();
    let install = delivered
        .iter()
        .find(|c| c.event.point == NotificationPoint::BppInstallation)
        .unwrap();
    assert_eq!(
        install.event.result_data.as_deref(),
        Some(pir.pending_notification.0.as_slice())
    );
    // A repeat is accepted and changes nothing.
    let pending = world.store.pending_callbacks().await.unwrap();
    let handled = world.smdp.handle_notification(&pir, NOW).await.unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    assert_eq!(world.profile(&a.iccid).await.state, ProfileState::Installed);
    assert_eq!(world.store.pending_callbacks().await.unwrap(), pending);
}

#[tokio::test]
async fn handle_notification_failures_and_other_notifications() {
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let oid = world.smdp.config().oid().clone();
    let a = authenticated(&world, &pki, None).await;
    world
        .smdp
        .get_bound_profile_package(&a.device.prepare_download(&a.auth, None), NOW)
        .await
        .unwrap();
    // Refused notifications are dropped (HTTP 204, the LPA removes them);
    // only a malformed request is an error.
    let refuse = async |req: HandleNotificationRequest| match world
        .smdp
        .handle_notification(&req, NOW)
        .await
    {
        Ok(NotificationHandled::Dropped(e)) => status(&e),
        other => panic!("not dropped: {other:?}"),
    };
    // Signed by another eUICC key: refused.
    let stranger = Device::new(&support::pki(1), 0);
    let forged = stranger.installation_result(&a.auth.transaction_id, &oid, &a.iccid, Ok(()));
    assert_eq!(refuse(forged).await, ("8.1", "6.1"));
    // Another SM-DP+'s OID; an unknown session; garbage.
    let other_oid: ferrosim_pki::Oid = "1.2.3.4".parse().unwrap();
    let wrong = a
        .device
        .installation_result(&a.auth.transaction_id, &other_oid, &a.iccid, Ok(()));
    assert_eq!(refuse(wrong).await, ("8.8", "3.10"));
    let unknown = a
        .device
        .installation_result(&"0A0B".parse().unwrap(), &oid, &a.iccid, Ok(()));
    assert_eq!(refuse(unknown).await, ("8.10.1", "3.9"));
    let garbage = HandleNotificationRequest {
        pending_notification: Base64(vec![0xBF, 0x37, 0x00]),
    };
    let malformed = world.smdp.handle_notification(&garbage, NOW).await;
    assert_eq!(status(&malformed.unwrap_err()), ("1.2", "2.1"));
    assert_eq!(
        world.profile(&a.iccid).await.state,
        ProfileState::Downloaded
    );

    // The eUICC failed to install: the order ends in error with its reason.
    let failed = a
        .device
        .installation_result(&a.auth.transaction_id, &oid, &a.iccid, Err((3, 8)));
    let handled = world.smdp.handle_notification(&failed, NOW).await.unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    let p = world.profile(&a.iccid).await;
    assert_eq!(p.state, ProfileState::Error);
    let failure = p.order.unwrap().failure.unwrap();
    assert_eq!(
        (failure.bpp_command_id, failure.error_reason),
        (Some(3), Some(8))
    );
    assert!(
        events(&world)
            .await
            .contains(&(4, Some(StatusCode::PROFILE_UNAVAILABLE)))
    );

    // An enable notification, verified against the chain it carries, is kept.
    let enable = a
        .device
        .other_notification(NotificationOperation::Enable, &a.iccid, 7);
    let handled = world.smdp.handle_notification(&enable, NOW).await.unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    let kept = world.store.notifications();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].operation.as_str(), kept[0].seq_number, kept[0].eid),
        ("enable", 7, Some(a.device.eid))
    );
    assert_eq!(kept[0].iccid.as_ref(), Some(&a.iccid));
    let foreign = stranger.other_notification(NotificationOperation::Enable, &a.iccid, 8);
    assert_eq!(refuse(foreign).await, ("8.11.1", "3.9"));
    assert_eq!(world.store.notifications().len(), 1);
}

#[tokio::test]
async fn cancel_session_ends_the_session_and_follows_the_reason() {
    let pki = pki(1);
    let world = World::new(&pki, 3).await;
    let oid = world.smdp.config().oid().clone();

    // Before authenticateClient: only the session ends (nothing to verify with).
    let device = Device::new(&pki, 0);
    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let cancel = device.cancel(&init.transaction_id, &oid, CancelSessionReason::Postponed);
    let answer = world.smdp.cancel_session(&cancel, NOW).await.unwrap();
    assert_eq!(answer.transaction_id.as_ref(), Some(&init.transaction_id));
    assert_eq!(
        session_state(&world, &init.transaction_id).await,
        SessionState::Cancelled
    );

    // Postponed after authentication: the order stays released for another try.
    let a = authenticated(&world, &pki, None).await;
    let cancel = a
        .device
        .cancel(&a.auth.transaction_id, &oid, CancelSessionReason::Postponed);
    world.smdp.cancel_session(&cancel, NOW).await.unwrap();
    assert_eq!(world.profile(&a.iccid).await.state, ProfileState::Released);
    assert!(
        events(&world)
            .await
            .contains(&(3, Some(StatusCode::PROFILE_UNAVAILABLE)))
    );
    // The cancelled session cannot be used any more.
    let e = world
        .smdp
        .get_bound_profile_package(&a.device.prepare_download(&a.auth, None), NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.10.1", "3.9"));

    // Rejected by the end user: the order ends.
    let b = authenticated(&world, &pki, None).await;
    let refuse = async |req: CancelSessionRequest| {
        status(&world.smdp.cancel_session(&req, NOW).await.unwrap_err())
    };
    let stranger = Device::new(&support::pki(1), 0);
    let forged = stranger.cancel(
        &b.auth.transaction_id,
        &oid,
        CancelSessionReason::EndUserRejection,
    );
    assert_eq!(refuse(forged).await, ("8.1", "6.1"));
    let other_oid: ferrosim_pki::Oid = "1.2.3.4".parse().unwrap();
    let wrong = b.device.cancel(
        &b.auth.transaction_id,
        &other_oid,
        CancelSessionReason::EndUserRejection,
    );
    assert_eq!(refuse(wrong).await, ("8.8", "3.10"));
    let unknown = b.device.cancel(
        &"0A0B".parse().unwrap(),
        &oid,
        CancelSessionReason::EndUserRejection,
    );
    assert_eq!(refuse(unknown).await, ("8.10.1", "3.9"));
    assert_eq!(world.profile(&b.iccid).await.state, ProfileState::Released);
    let reject = b.device.cancel(
        &b.auth.transaction_id,
        &oid,
        CancelSessionReason::EndUserRejection,
    );
    world.smdp.cancel_session(&reject, NOW).await.unwrap();
    assert_eq!(world.profile(&b.iccid).await.state, ProfileState::Error);
}

/// Issue 15 item 16: enable, disable and delete notifications of an
/// installed profile update its state on the device and are forwarded to
/// the operator (notification point 5, the signed notification as
/// `resultData`), once each and in the eUICC's sequence order; one from
/// another eUICC, an older or repeated one, or one about a profile that is
/// not installed is kept but changes and forwards nothing.
#[tokio::test]
async fn device_notifications_track_the_profile_and_reach_the_operator() {
    let pki = pki(2);
    let world = World::new(&pki, 2).await;
    let oid = world.smdp.config().oid().clone();
    let a = authenticated(&world, &pki, None).await;
    world
        .smdp
        .get_bound_profile_package(&a.device.prepare_download(&a.auth, None), NOW)
        .await
        .unwrap();
    let pir = a
        .device
        .installation_result(&a.auth.transaction_id, &oid, &a.iccid, Ok(()));
    let handled = world.smdp.handle_notification(&pir, NOW).await.unwrap();
    assert!(matches!(handled, NotificationHandled::Recorded));
    assert_eq!(
        world.profile(&a.iccid).await.device_state(),
        Some("installed")
    );
    let forwarded = || {
        world
            .store
            .queued_callbacks()
            .into_iter()
            .filter(|c| c.event.point == NotificationPoint::DeviceNotification)
            .map(|c| c.event)
            .collect::<Vec<_>>()
    };
    let send = async |device: &Device, op: NotificationOperation, seq: i64| {
        let n = device.other_notification(op, &a.iccid, seq);
        let handled = world.smdp.handle_notification(&n, NOW).await.unwrap();
        assert!(
            matches!(handled, NotificationHandled::Recorded),
            "{handled:?}"
        );
        n.pending_notification.0
    };

    let enable = send(&a.device, NotificationOperation::Enable, 10).await;
    let p = world.profile(&a.iccid).await;
    assert_eq!(p.device_state(), Some("enabled"));
    assert_eq!(
        p.state,
        ProfileState::Installed,
        "the order stays installed"
    );
    let sent = forwarded();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].eid, sent[0].failure, sent[0].result_data.as_deref()),
        (Some(a.device.eid), None, Some(enable.as_slice()))
    );
    // Repeated, or older than the last one applied: nothing changes.
    send(&a.device, NotificationOperation::Enable, 10).await;
    send(&a.device, NotificationOperation::Disable, 9).await;
    assert_eq!(
        world.profile(&a.iccid).await.device_state(),
        Some("enabled")
    );
    assert_eq!(forwarded().len(), 1);
    // Another eUICC (a valid chain) naming this profile: kept, not applied.
    let other = Device::new(&pki, 1);
    send(&other, NotificationOperation::Delete, 50).await;
    assert_eq!(
        world.profile(&a.iccid).await.device_state(),
        Some("enabled")
    );
    assert_eq!(forwarded().len(), 1);

    send(&a.device, NotificationOperation::Disable, 11).await;
    assert_eq!(
        world.profile(&a.iccid).await.device_state(),
        Some("disabled")
    );
    send(&a.device, NotificationOperation::Delete, 12).await;
    let p = world.profile(&a.iccid).await;
    assert_eq!(p.device_state(), Some("deleted"));
    let report = p.order.unwrap().device.unwrap();
    assert_eq!((report.seq_number, report.at), (12, NOW));
    assert_eq!(forwarded().len(), 3);
    assert_eq!(
        world.store.notifications().len(),
        6,
        "every verified one is kept"
    );

    // A profile that is only downloaded (no installation result yet).
    let b = authenticated(&world, &pki, None).await;
    world
        .smdp
        .get_bound_profile_package(&b.device.prepare_download(&b.auth, None), NOW)
        .await
        .unwrap();
    let n = b
        .device
        .other_notification(NotificationOperation::Enable, &b.iccid, 20);
    let handled = world.smdp.handle_notification(&n, NOW).await.unwrap();
    assert!(matches!(handled, NotificationHandled::Recorded));
    assert_eq!(world.profile(&b.iccid).await.device_state(), None);
    assert_eq!(forwarded().len(), 3);
}

/// Issue 15 item 5: a new version of a profile type does not change the
/// orders made before it. An order keeps the version it was made with (its
/// authenticateClient gets that version's metadata and its package is built
/// from that version); an order made after the import gets the new one.
#[tokio::test]
async fn an_order_keeps_the_profile_type_version_it_was_made_with() {
    use ferrosim_smdp::inventory::{self, ProfileTypeImport};
    use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
    let pki = pki(1);
    let world = World::new(&pki, 2).await;
    let device = Device::new(&pki, 0);
    let (iccid, matching_id) = world.order(None, None).await;
    let v2 = inventory::replace_profile_type(
        &world.store,
        ProfileTypeImport {
            operator: world.operator.id.clone(),
            name: PROFILE_TYPE.into(),
            package: PACKAGE.to_vec(),
            service_provider_name: Some("Test SP".into()),
            profile_name: Some("Version two".into()),
            profile_class: ProfileClass::Operational,
            policy_rules: PolicyRules::default(),
            owner_mcc_mnc: None,
            fallback_allowed: false,
        },
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(v2.version, 2);
    let name_in = |auth: &AuthenticateClientResponse| {
        let m: ferrosim_asn1::rsp::StoreMetadataRequest =
            ferrosim_asn1::decode_der(&auth.profile_metadata.0).unwrap();
        m.profile_name
    };

    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let auth = world
        .smdp
        .authenticate_client(&device.authenticate(&init, Some(&matching_id)), NOW)
        .await
        .unwrap();
    assert_eq!(name_in(&auth), "TS.48", "the order was made with version 1");
    assert_eq!(
        world.profile(&iccid).await.order.unwrap().type_version,
        Some(1)
    );
    world
        .smdp
        .get_bound_profile_package(&device.prepare_download(&auth, None), NOW)
        .await
        .unwrap();

    let later = authenticated(&world, &pki, None).await;
    assert_eq!(name_in(&later.auth), "Version two");
    assert_eq!(
        world
            .profile(&later.iccid)
            .await
            .order
            .unwrap()
            .type_version,
        Some(2)
    );
    // Version 1 is still there, for the record.
    let v1 = world
        .store
        .profile_type_version(&world.operator.id, PROFILE_TYPE, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.metadata.profile_name, "TS.48");
    assert!(
        world
            .store
            .profile_type_version(&world.operator.id, PROFILE_TYPE, 3)
            .await
            .unwrap()
            .is_none()
    );
}
