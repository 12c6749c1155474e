//! Whole downloads against the real SM-DP+ logic (`ferrosim-smdp` over a
//! temporary SQLite store): ES2+ order, then a minimal LPA moving the ES9+
//! answers into ES10 APDUs and back.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{
    SMDP_ADDRESS, authenticate_server_request, card, challenge, ctx_params1, es10, fixture,
    load_bpp, open_isdr, pir_result, pki, prepare_download_request, split_bpp, type_metadata,
    verify_pir,
};
use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest, RequestHeader};
use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, AuthenticateClientResponse, CancelSessionRequest,
    GetBoundProfilePackageRequest, HandleNotificationRequest, InitiateAuthenticationRequest,
};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, rsp};
use ferrosim_euicc::{ProfileState, VirtualEuicc};
use ferrosim_saip::{Iccid, Imsi, Key128, Personalisation, Pin, ProfilePackage};
use ferrosim_smdp::es2::token_hash;
use ferrosim_smdp::es9::NotificationHandled;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::PolicyRules;
use ferrosim_smdp::order::{ProfileRecord, ProfileState as OrderState};
use ferrosim_smdp::store::{CatalogStore, NewProfile, Operator, ProfileStore, ProfileTypeRecord};
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Credential, Smdp, SmdpConfig};
use ferrosim_store::{SqlStore, StoreOptions};
use sha2::{Digest, Sha256};

const OPERATOR: &str = "test-operator";
const PROFILE_TYPE: &str = "ts48";

/// An SM-DP+ with one operator, one profile type and one profile.
struct World {
    smdp: Smdp<SqlStore>,
    operator: Operator,
    iccid: Iccid,
    personalisation: Personalisation,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(rules: PolicyRules, iccid_body: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("smdp.db").display());
        let store = SqlStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let pki = pki();
        let credential = |issued: &ferrosim_pki::Issued| Credential {
            certificate: issued.certificate.clone(),
            key: Arc::new(issued.signing_key().unwrap()),
        };
        let config = SmdpConfig::new(
            SMDP_ADDRESS.to_owned(),
            credential(&pki.dp_auth),
            credential(&pki.dp_pb),
            pki.trust_store().unwrap(),
        )
        .unwrap();
        let now = Timestamp::now();
        let operator = Operator {
            id: OperatorId::new(OPERATOR).unwrap(),
            name: "Test Operator".into(),
            token_hash: token_hash("secret"),
            callback_url: None,
        };
        store.put_operator(&operator).await.unwrap();
        store
            .put_profile_type(&ProfileTypeRecord {
                operator: operator.id.clone(),
                name: PROFILE_TYPE.into(),
                package: fixture().0,
                metadata: type_metadata(rules),
                created_at: now,
                version: 1,
            })
            .await
            .unwrap();
        let iccid = Iccid::from_body(iccid_body).unwrap();
        let mut personalisation = Personalisation::new(iccid.clone());
        personalisation.imsi = Some(Imsi::new("001010000012345").unwrap());
        personalisation.k = Some(Key128::new([0x11; 16]));
        personalisation.opc = Some(Key128::new([0x22; 16]));
        personalisation.pin1 = Some(Pin::new("pin1", "4321").unwrap());
        store
            .insert_profiles(&[NewProfile {
                record: ProfileRecord::new_available(
                    iccid.clone(),
                    operator.id.clone(),
                    PROFILE_TYPE.into(),
                    now,
                ),
                personalisation: personalisation.clone(),
            }])
            .await
            .unwrap();
        Self {
            smdp: Smdp::new(config, store),
            operator,
            iccid,
            personalisation,
            _dir: dir,
        }
    }

    /// downloadOrder + confirmOrder (released); returns the matching id.
    async fn order(&self, confirmation_code: Option<&str>) -> String {
        let header = |n: &str| RequestHeader {
            function_requester_identifier: OPERATOR.into(),
            function_call_identifier: n.into(),
        };
        let now = Timestamp::now();
        self.smdp
            .download_order(
                &self.operator,
                &DownloadOrderRequest {
                    header: header("1"),
                    eid: None,
                    iccid: Some(self.iccid.as_str().into()),
                    profile_type: None,
                },
                now,
            )
            .await
            .unwrap();
        self.smdp
            .confirm_order(
                &self.operator,
                &ConfirmOrderRequest {
                    header: header("2"),
                    iccid: self.iccid.as_str().into(),
                    eid: None,
                    matching_id: None,
                    confirmation_code: confirmation_code.map(str::to_owned),
                    smds_address: None,
                    release_flag: true,
                },
                now,
            )
            .await
            .unwrap()
            .matching_id
    }

    async fn order_state(&self) -> OrderState {
        self.smdp
            .store()
            .profile(&self.iccid)
            .await
            .unwrap()
            .unwrap()
            .state
    }

    /// The personalised package the SM-DP+ binds for this profile.
    fn personalised_package(&self) -> Vec<u8> {
        ProfilePackage::parse(&fixture().0)
            .unwrap()
            .personalise(&self.personalisation)
            .unwrap()
    }
}

/// The LPA side of common mutual authentication: challenge, info1,
/// initiateAuthentication, AuthenticateServer, authenticateClient.
async fn authenticate(
    world: &World,
    card: &mut VirtualEuicc,
    channel: u8,
    matching_id: &str,
) -> AuthenticateClientResponse {
    let now = Timestamp::now();
    let euicc_challenge = challenge(card, channel);
    let info1 = es10(card, channel, &[0xBF, 0x20, 0x00]);
    let init = world
        .smdp
        .initiate_authentication(
            &InitiateAuthenticationRequest {
                euicc_challenge: Base64(euicc_challenge.to_vec()),
                euicc_info1: Base64(info1),
                smdp_address: SMDP_ADDRESS.into(),
            },
            now,
        )
        .await
        .unwrap();
    let auth = es10(
        card,
        channel,
        &authenticate_server_request(
            &init.server_signed1.0,
            &init.server_signature1.0,
            &init.euicc_ci_pkid_to_be_used.0,
            &init.server_certificate.0,
            &ctx_params1(Some(matching_id)),
        ),
    );
    world
        .smdp
        .authenticate_client(
            &AuthenticateClientRequest {
                transaction_id: init.transaction_id.clone(),
                authenticate_server_response: Base64(auth),
            },
            now,
        )
        .await
        .unwrap()
}

/// The LPA side of a download up to the Bound Profile Package.
async fn fetch_bpp(
    world: &World,
    card: &mut VirtualEuicc,
    channel: u8,
    matching_id: &str,
    confirmation_code: Option<&str>,
) -> Vec<u8> {
    let now = Timestamp::now();
    let client = authenticate(world, card, channel, matching_id).await;
    // What the LPA shows the user before asking for consent.
    let metadata: rsp::StoreMetadataRequest = decode_der(&client.profile_metadata.0).unwrap();
    assert_eq!(metadata.profile_name, "TS.48 test profile");
    let tid = client.transaction_id.as_bytes().to_vec();
    let hash_cc: Option<[u8; 32]> = confirmation_code.map(|code| {
        let mut h = Sha256::new();
        h.update(Sha256::digest(code.as_bytes()));
        h.update(&tid);
        h.finalize().into()
    });
    let prepared = es10(
        card,
        channel,
        &prepare_download_request(
            &client.smdp_signed2.0,
            &client.smdp_signature2.0,
            hash_cc.as_ref(),
            &client.smdp_certificate.0,
        ),
    );
    world
        .smdp
        .get_bound_profile_package(
            &GetBoundProfilePackageRequest {
                transaction_id: client.transaction_id,
                prepare_download_response: Base64(prepared),
            },
            now,
        )
        .await
        .unwrap()
        .bound_profile_package
        .0
}

#[tokio::test]
async fn full_download_installs_the_personalised_package() {
    let world = World::new(PolicyRules::default(), "894944000000000001").await;
    let matching_id = world.order(None).await;
    let mut card = card();
    let channel = open_isdr(&mut card);
    let bpp = fetch_bpp(&world, &mut card, channel, &matching_id, None).await;
    let revision = card.state_revision();
    let (pir, pieces) = load_bpp(&mut card, channel, &bpp);
    assert_eq!(
        pieces,
        split_bpp(&bpp).len(),
        "the result comes with the last piece"
    );
    assert!(card.state_revision() > revision);
    let aid = pir_result(&pir).expect("installation succeeded");
    verify_pir(&card, &pir);

    // The installed profile is the personalised package, decoded.
    let profile = card
        .state()
        .profile(world.iccid.as_str())
        .expect("installed")
        .clone();
    assert_eq!(
        profile.package_sha256,
        <[u8; 32]>::from(Sha256::digest(world.personalised_package()))
    );
    assert_eq!(
        profile.package_len as usize,
        world.personalised_package().len()
    );
    assert_eq!(profile.isdp_aid.as_slice(), aid.as_slice());
    assert_eq!(profile.state, ProfileState::Disabled);
    assert_eq!(profile.imsi.as_deref(), Some("001010000012345"));
    assert_eq!(profile.k.as_deref(), Some(&[0x11; 16][..]));
    assert_eq!(profile.opc.as_deref(), Some(&[0x22; 16][..]));
    assert_eq!(
        profile.pin(0x01).and_then(|p| p.digits()).as_deref(),
        Some("4321")
    );
    assert!(profile.puk(0x01).is_some());
    assert_eq!(profile.profile_name(), "TS.48 test profile");
    assert_eq!(profile.service_provider_name(), "Test Operator");
    assert_eq!(profile.smdp_address, SMDP_ADDRESS);
    assert_eq!(profile.smdp_oid, ferrosim_pki::generate::DEFAULT_SMDP_OID);
    assert_eq!(
        profile
            .notification_address(ferrosim_euicc::NotificationOperation::Enable)
            .as_deref(),
        Some(SMDP_ADDRESS)
    );
    let summary = ProfilePackage::parse(&world.personalised_package())
        .unwrap()
        .summary()
        .unwrap();
    assert_eq!(profile.apn, summary.apns.first().cloned());

    // The LPA delivers the installation result from the notification list.
    let list = es10(&mut card, channel, &[0xBF, 0x28, 0x00]);
    let list: rsp::ListNotificationResponse = decode_der(&list).unwrap();
    let rsp::ListNotificationResponse::notificationMetadataList(list) = list else {
        panic!("notification list error");
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].notification_address, SMDP_ADDRESS);
    let seq = list[0].seq_number.clone();
    let retrieved = es10(&mut card, channel, &[0xBF, 0x2B, 0x00]);
    let outer = Tlv::parse_tagged(&retrieved, 0xBF2B).unwrap();
    let pending = outer.require(0xA0).unwrap();
    assert_eq!(
        pending.value,
        pir.as_slice(),
        "the stored notification is the BF37 sent"
    );
    let handled = world
        .smdp
        .handle_notification(
            &HandleNotificationRequest {
                pending_notification: Base64(pir.clone()),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    assert_eq!(world.order_state().await, OrderState::Installed);
    let sent = ferrosim_asn1::encode_der(&rsp::NotificationSentRequest::new(seq)).unwrap();
    let answer = es10(&mut card, channel, &sent);
    assert_eq!(answer, [0xBF, 0x30, 0x03, 0x80, 0x01, 0x00]);
    assert_eq!(
        es10(&mut card, channel, &sent),
        [0xBF, 0x30, 0x03, 0x80, 0x01, 0x01]
    );
    assert!(card.state().notifications.is_empty());

    // The same profile cannot be installed twice.
    let mut again = VirtualEuicc::new(common::identity(), card.state().clone());
    let ch = open_isdr(&mut again);
    let server = common::FakeSmdp::new(pki());
    let pir = server.install(
        &mut again,
        ch,
        &world.personalised_package(),
        PolicyRules::default(),
    );
    assert_eq!(
        pir_result(&pir),
        Err((2, 9)),
        "storeMetadata / iccidAlreadyExistsOnEuicc"
    );
}

#[tokio::test]
async fn download_with_a_confirmation_code() {
    let world = World::new(PolicyRules::default(), "894944000000000002").await;
    let matching_id = world.order(Some("12345678")).await;
    let mut card = card();
    let channel = open_isdr(&mut card);
    let bpp = fetch_bpp(&world, &mut card, channel, &matching_id, Some("12345678")).await;
    let (pir, _) = load_bpp(&mut card, channel, &bpp);
    assert!(pir_result(&pir).is_ok());
    let handled = world
        .smdp
        .handle_notification(
            &HandleNotificationRequest {
                pending_notification: Base64(pir),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    assert_eq!(world.order_state().await, OrderState::Installed);
}

#[tokio::test]
async fn a_tampered_segment_fails_the_installation() {
    let world = World::new(PolicyRules::default(), "894944000000000003").await;
    let matching_id = world.order(None).await;
    let mut card = card();
    let channel = open_isdr(&mut card);
    let bpp = fetch_bpp(&world, &mut card, channel, &matching_id, None).await;
    let mut pieces = split_bpp(&bpp);
    // Flip one ciphertext bit in the third profile segment.
    let target = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p[0] == 0x86)
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    pieces[target][10] ^= 0x01;
    let mut pir = None;
    for (i, piece) in pieces.iter().enumerate() {
        let (data, sw) = common::es10_sw(&mut card, channel, piece, 255);
        assert_eq!(sw, 0x9000);
        if !data.is_empty() {
            assert_eq!(i, target, "the eUICC stops at the tampered segment");
            pir = Some(data);
            break;
        }
    }
    let pir = pir.expect("an installation result");
    assert_eq!(
        pir_result(&pir),
        Err((5, 8)),
        "loadProfileElements / scp03tSecurityError"
    );
    verify_pir(&card, &pir);
    assert!(card.state().profiles.is_empty());
    // The session is over: further pieces are refused.
    let (_, sw) = common::es10_sw(&mut card, channel, &pieces[target + 1], 255);
    assert_eq!(sw, 0x6985);
    // The failure reaches the SM-DP+, which ends the order in error.
    let handled = world
        .smdp
        .handle_notification(
            &HandleNotificationRequest {
                pending_notification: Base64(pir),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    assert_eq!(world.order_state().await, OrderState::Error);
}

#[tokio::test]
async fn profile_operations_notify_the_smdp() {
    let world = World::new(PolicyRules::default(), "894944000000000004").await;
    let matching_id = world.order(None).await;
    let mut card = card();
    let channel = open_isdr(&mut card);
    let bpp = fetch_bpp(&world, &mut card, channel, &matching_id, None).await;
    load_bpp(&mut card, channel, &bpp);
    let iccid = card.state().profiles[0].iccid_bytes();
    let mut enable = vec![0xBF, 0x31, 0x11, 0xA0, 0x0C, 0x5A, 0x0A];
    enable.extend_from_slice(&iccid);
    enable.extend_from_slice(&[0x81, 0x01, 0xFF]);
    assert_eq!(
        es10(&mut card, channel, &enable),
        [0xBF, 0x31, 0x03, 0x80, 0x01, 0x00]
    );
    let mut disable = enable.clone();
    disable[1] = 0x32;
    assert_eq!(
        es10(&mut card, channel, &disable),
        [0xBF, 0x32, 0x03, 0x80, 0x01, 0x00]
    );
    let mut delete = vec![0xBF, 0x33, 0x0C, 0x5A, 0x0A];
    delete.extend_from_slice(&iccid);
    assert_eq!(
        es10(&mut card, channel, &delete),
        [0xBF, 0x33, 0x03, 0x80, 0x01, 0x00]
    );
    assert!(card.state().profiles.is_empty());

    // install, enable, disable, delete: each one signed by the eUICC.
    let ops: Vec<_> = card
        .state()
        .notifications
        .iter()
        .map(|n| n.operation)
        .collect();
    use ferrosim_euicc::NotificationOperation as Op;
    assert_eq!(ops, [Op::Install, Op::Enable, Op::Disable, Op::Delete]);
    let seqs: Vec<u64> = card
        .state()
        .notifications
        .iter()
        .map(|n| n.seq_number)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers grow: {seqs:?}"
    );
    let retrieved = es10(&mut card, channel, &[0xBF, 0x2B, 0x00]);
    let retrieved: rsp::RetrieveNotificationsListResponse = decode_der(&retrieved).unwrap();
    let rsp::RetrieveNotificationsListResponse::notificationList(list) = retrieved else {
        panic!("notification list error");
    };
    assert_eq!(list.len(), 4);
    for (n, op) in card.state().notifications[1..]
        .iter()
        .zip([Op::Enable, Op::Disable, Op::Delete])
    {
        common::verify_other_notification(
            &card.pending_notification(n),
            op,
            &iccid,
            SMDP_ADDRESS,
            n.seq_number,
        );
    }
    // The installation result is accepted by the SM-DP+. (Its
    // handleNotification cannot take the other notifications yet: see the
    // crate's report on `other_signed_part`.)
    let handled = world
        .smdp
        .handle_notification(
            &HandleNotificationRequest {
                pending_notification: Base64(card.state().notifications[0].signed.clone()),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    assert_eq!(world.order_state().await, OrderState::Installed);
}

#[tokio::test]
async fn a_postponed_download_is_cancelled_and_retried() {
    let world = World::new(PolicyRules::default(), "894944000000000005").await;
    let matching_id = world.order(None).await;
    let mut card = card();
    let channel = open_isdr(&mut card);
    let client = authenticate(&world, &mut card, channel, &matching_id).await;
    let tid = client.transaction_id.as_bytes().to_vec();
    // The end user postpones: CancelSession(postponed).
    let request = ferrosim_asn1::encode_der(&rsp::CancelSessionRequest::new(
        rsp::TransactionId(tid.clone().into()),
        rsp::CancelSessionReason(1.into()),
    ))
    .unwrap();
    let cancelled = es10(&mut card, channel, &request);
    let response: rsp::CancelSessionResponse = decode_der(&cancelled).unwrap();
    let rsp::CancelSessionResponse::cancelSessionResponseOk(ok) = response else {
        panic!("cancel refused: {response:?}");
    };
    assert_eq!(
        ok.euicc_cancel_session_signed.transaction_id.0.as_ref(),
        tid.as_slice()
    );
    world
        .smdp
        .cancel_session(
            &CancelSessionRequest {
                transaction_id: client.transaction_id.clone(),
                cancel_session_response: Base64(cancelled),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(world.order_state().await, OrderState::Released);
    // The session is gone on the eUICC: a second cancel is refused.
    assert_eq!(
        es10(&mut card, channel, &request),
        [0xBF, 0x41, 0x03, 0x81, 0x01, 0x05]
    );
    // The download can be retried.
    let bpp = fetch_bpp(&world, &mut card, channel, &matching_id, None).await;
    let (pir, _) = load_bpp(&mut card, channel, &bpp);
    assert!(pir_result(&pir).is_ok());
}
