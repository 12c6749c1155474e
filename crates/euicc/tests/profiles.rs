//! Local profile management: listing, enabling, disabling, deleting under
//! the profile policy rules, nicknames, memory reset, configured addresses,
//! the signed notifications each operation leaves, and persistence.

#![allow(clippy::unwrap_used)]

mod common;

use common::{FakeSmdp, card, es10, es10_sw, fixture, open_isdr, pir_result, pki};
use ferrosim_asn1::rasn::types::{BitString, FixedOctetString, OctetString};
use ferrosim_asn1::{decode_der, encode_der, rsp};
use ferrosim_euicc::codes::ProfileResult;
use ferrosim_euicc::{
    EuiccState, NotificationOperation as Op, ProfileClass, ProfileState, VirtualEuicc,
};
use ferrosim_saip::{Iccid, Personalisation, ProfilePackage};
use ferrosim_smdp::metadata::PolicyRules;

const NO_RULES: PolicyRules = PolicyRules {
    update_control: false,
    disable_not_allowed: false,
    delete_not_allowed: false,
};

/// The fixture personalised with another ICCID.
fn package_with_iccid(body: &str) -> (Vec<u8>, String) {
    let iccid = Iccid::from_body(body).unwrap();
    let package = ProfilePackage::parse(&fixture().0)
        .unwrap()
        .personalise(&Personalisation::new(iccid.clone()))
        .unwrap();
    (package, iccid.as_str().to_owned())
}

/// A card with two profiles installed (A without rules, B with `rules_b`).
fn two_profiles(rules_b: PolicyRules) -> (VirtualEuicc, u8, [u8; 10], [u8; 10]) {
    let mut c = card();
    let ch = open_isdr(&mut c);
    let server = FakeSmdp::new(pki());
    let (a, _) = package_with_iccid("894944000000000101");
    let (b, _) = package_with_iccid("894944000000000102");
    assert!(pir_result(&server.install(&mut c, ch, &a, NO_RULES)).is_ok());
    assert!(pir_result(&server.install(&mut c, ch, &b, rules_b)).is_ok());
    let a = c.state().profiles[0].iccid_bytes();
    let b = c.state().profiles[1].iccid_bytes();
    (c, ch, a, b)
}

fn by_iccid(iccid: &[u8; 10]) -> rsp::Iccid {
    rsp::Iccid(FixedOctetString::new(*iccid))
}

fn enable(c: &mut VirtualEuicc, ch: u8, iccid: &[u8; 10]) -> ProfileResult {
    let request = rsp::EnableProfileRequest::new(
        rsp::EnableProfileRequestProfileIdentifier::iccid(by_iccid(iccid)),
        true,
    );
    let response: rsp::EnableProfileResponse =
        decode_der(&es10(c, ch, &encode_der(&request).unwrap())).unwrap();
    ProfileResult::from_code(i64::try_from(&response.enable_result).unwrap()).unwrap()
}

fn disable(c: &mut VirtualEuicc, ch: u8, iccid: &[u8; 10]) -> ProfileResult {
    let request = rsp::DisableProfileRequest::new(
        rsp::DisableProfileRequestProfileIdentifier::iccid(by_iccid(iccid)),
        false,
    );
    let response: rsp::DisableProfileResponse =
        decode_der(&es10(c, ch, &encode_der(&request).unwrap())).unwrap();
    ProfileResult::from_code(i64::try_from(&response.disable_result).unwrap()).unwrap()
}

fn delete(c: &mut VirtualEuicc, ch: u8, iccid: &[u8; 10]) -> ProfileResult {
    let request = rsp::DeleteProfileRequest::iccid(by_iccid(iccid));
    let response: rsp::DeleteProfileResponse =
        decode_der(&es10(c, ch, &encode_der(&request).unwrap())).unwrap();
    ProfileResult::from_code(i64::try_from(&response.delete_result).unwrap()).unwrap()
}

fn profile_infos(
    c: &mut VirtualEuicc,
    ch: u8,
    request: &rsp::ProfileInfoListRequest,
) -> Vec<rsp::ProfileInfo> {
    let response: rsp::ProfileInfoListResponse =
        decode_der(&es10(c, ch, &encode_der(request).unwrap())).unwrap();
    match response {
        rsp::ProfileInfoListResponse::profileInfoListOk(list) => list,
        other => panic!("{other:?}"),
    }
}

fn state_of(c: &VirtualEuicc, iccid: &[u8; 10]) -> ProfileState {
    c.state()
        .profiles
        .iter()
        .find(|p| &p.iccid_bytes() == iccid)
        .unwrap()
        .state
}

fn operations(c: &VirtualEuicc) -> Vec<Op> {
    c.state()
        .notifications
        .iter()
        .map(|n| n.operation)
        .collect()
}

#[test]
fn one_enabled_profile_at_a_time_with_notifications() {
    let (mut c, ch, a, b) = two_profiles(NO_RULES);
    assert_eq!(operations(&c), [Op::Install, Op::Install]);
    assert_eq!(enable(&mut c, ch, &a), ProfileResult::Ok);
    assert_eq!(enable(&mut c, ch, &a), ProfileResult::WrongState);
    // Enabling B disables A.
    assert_eq!(enable(&mut c, ch, &b), ProfileResult::Ok);
    assert_eq!(
        (state_of(&c, &a), state_of(&c, &b)),
        (ProfileState::Disabled, ProfileState::Enabled)
    );
    assert_eq!(
        c.state().enabled_profile().map(|p| p.iccid_bytes()),
        Some(b)
    );
    assert_eq!(operations(&c)[2..], [Op::Enable, Op::Disable, Op::Enable]);
    // Enabled profiles cannot be deleted; disabled ones can.
    assert_eq!(delete(&mut c, ch, &b), ProfileResult::WrongState);
    assert_eq!(disable(&mut c, ch, &a), ProfileResult::WrongState);
    assert_eq!(disable(&mut c, ch, &b), ProfileResult::Ok);
    assert_eq!(delete(&mut c, ch, &b), ProfileResult::Ok);
    assert_eq!(delete(&mut c, ch, &b), ProfileResult::NotFound);
    assert_eq!(enable(&mut c, ch, &b), ProfileResult::NotFound);
    assert_eq!(operations(&c)[5..], [Op::Disable, Op::Delete]);
    // Every notification is signed and names the profile and the SM-DP+.
    let iccids = [a, a, b, b, b];
    for (n, iccid) in c.state().notifications[2..].iter().zip(&iccids) {
        common::verify_other_notification(
            &c.pending_notification(n),
            n.operation,
            iccid,
            common::SMDP_ADDRESS,
            n.seq_number,
        );
    }
    // By ISD-P AID too.
    let aid = c.state().profiles[0].isdp_aid.to_vec();
    let request = rsp::EnableProfileRequest::new(
        rsp::EnableProfileRequestProfileIdentifier::isdpAid(rsp::OctetTo16(OctetString::from(aid))),
        false,
    );
    assert_eq!(
        es10(&mut c, ch, &encode_der(&request).unwrap()),
        [0xBF, 0x31, 0x03, 0x80, 0x01, 0x00]
    );
    assert_eq!(state_of(&c, &a), ProfileState::Enabled);
}

#[test]
fn profile_policy_rules_are_honoured() {
    let rules = PolicyRules {
        disable_not_allowed: true,
        delete_not_allowed: true,
        ..PolicyRules::default()
    };
    let (mut c, ch, a, b) = two_profiles(rules);
    let p = &c.state().profiles[1];
    assert!(p.policy_rules.disable_not_allowed && p.policy_rules.delete_not_allowed);
    assert_eq!(enable(&mut c, ch, &b), ProfileResult::Ok);
    // PPR1: B cannot be disabled, nor replaced by A.
    assert_eq!(disable(&mut c, ch, &b), ProfileResult::DisallowedByPolicy);
    assert_eq!(enable(&mut c, ch, &a), ProfileResult::DisallowedByPolicy);
    assert_eq!(state_of(&c, &b), ProfileState::Enabled);
    assert_eq!(state_of(&c, &a), ProfileState::Disabled);
    // PPR2: not deleted either (once disabled it would be; here by memory reset only).
    assert_eq!(delete(&mut c, ch, &b), ProfileResult::WrongState);
    // A (no rules) can be deleted.
    assert_eq!(delete(&mut c, ch, &a), ProfileResult::Ok);
    // The refusals left no notifications.
    assert_eq!(
        operations(&c),
        [Op::Install, Op::Install, Op::Enable, Op::Delete]
    );

    // PPR2 alone: disabled but not deletable.
    let (mut c, ch, _, b) = two_profiles(PolicyRules {
        disable_not_allowed: false,
        delete_not_allowed: true,
        ..PolicyRules::default()
    });
    assert_eq!(enable(&mut c, ch, &b), ProfileResult::Ok);
    assert_eq!(disable(&mut c, ch, &b), ProfileResult::Ok);
    assert_eq!(delete(&mut c, ch, &b), ProfileResult::DisallowedByPolicy);
    // The profile list shows the rules.
    let infos = profile_infos(
        &mut c,
        ch,
        &rsp::ProfileInfoListRequest::new(
            Some(rsp::ProfileInfoListRequestSearchCriteria::iccid(by_iccid(
                &b,
            ))),
            None,
        ),
    );
    assert_eq!(infos.len(), 1);
    let ppr = infos[0].profile_policy_rules.as_ref().unwrap();
    assert_eq!(ppr.0.get(2).map(|b| *b), Some(true));
    assert_eq!(ppr.0.get(1).map(|b| *b), Some(false));
}

#[test]
fn profile_list_search_and_tag_list() {
    let (mut c, ch, a, b) = two_profiles(NO_RULES);
    enable(&mut c, ch, &b);
    let all = profile_infos(&mut c, ch, &rsp::ProfileInfoListRequest::new(None, None));
    assert_eq!(all.len(), 2);
    let first = &all[0];
    assert_eq!(first.iccid.as_ref().map(|i| *i.0), Some(a));
    assert_eq!(first.profile_name.as_deref(), Some("TS.48 test profile"));
    assert_eq!(
        first.service_provider_name.as_deref(),
        Some("Test Operator")
    );
    assert_eq!(
        first
            .profile_class
            .as_ref()
            .map(|k| i64::try_from(&k.0).unwrap()),
        Some(2)
    );
    assert_eq!(
        all[1]
            .profile_state
            .as_ref()
            .map(|s| i64::try_from(&s.0).unwrap()),
        Some(1)
    );
    assert!(first.isdp_aid.is_some() && first.notification_configuration_info.is_some());
    assert!(first.profile_owner.is_some());
    assert_ne!(first.isdp_aid, all[1].isdp_aid);

    // Only some data objects: ICCID and state.
    let tags =
        rsp::ProfileInfoListRequest::new(None, Some(OctetString::from_static(&[0x5A, 0x9F, 0x70])));
    let some = profile_infos(&mut c, ch, &tags);
    assert!(
        some.iter()
            .all(|p| p.iccid.is_some() && p.profile_state.is_some())
    );
    assert!(
        some.iter()
            .all(|p| p.profile_name.is_none() && p.isdp_aid.is_none())
    );

    // Search by ISD-P AID and by class.
    let aid = all[1].isdp_aid.clone().unwrap();
    let found = profile_infos(
        &mut c,
        ch,
        &rsp::ProfileInfoListRequest::new(
            Some(rsp::ProfileInfoListRequestSearchCriteria::isdpAid(aid)),
            None,
        ),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iccid.as_ref().map(|i| *i.0), Some(b));
    let test_class = profile_infos(
        &mut c,
        ch,
        &rsp::ProfileInfoListRequest::new(
            Some(rsp::ProfileInfoListRequestSearchCriteria::profileClass(
                rsp::ProfileClass(0.into()),
            )),
            None,
        ),
    );
    assert!(test_class.is_empty());
    // A truncated tag list is incorrectInputValues.
    let bad = rsp::ProfileInfoListRequest::new(None, Some(OctetString::from_static(&[0x9F])));
    assert_eq!(
        es10(&mut c, ch, &encode_der(&bad).unwrap()),
        [0xBF, 0x2D, 0x03, 0x81, 0x01, 0x01]
    );
    // Empty card: an empty list.
    let mut empty = card();
    let ech = open_isdr(&mut empty);
    assert_eq!(
        es10(&mut empty, ech, &[0xBF, 0x2D, 0x00]),
        [0xBF, 0x2D, 0x02, 0xA0, 0x00]
    );
}

#[test]
fn nicknames() {
    let (mut c, ch, a, _) = two_profiles(NO_RULES);
    let set = |c: &mut VirtualEuicc, iccid: &[u8; 10], name: &str| {
        let request = rsp::SetNicknameRequest::new(by_iccid(iccid), name.to_owned());
        let r: rsp::SetNicknameResponse =
            decode_der(&es10(c, ch, &encode_der(&request).unwrap())).unwrap();
        i64::try_from(&r.set_nickname_result).unwrap()
    };
    assert_eq!(set(&mut c, &a, "Travel"), 0);
    assert_eq!(c.state().profiles[0].nickname.as_deref(), Some("Travel"));
    let infos = profile_infos(&mut c, ch, &rsp::ProfileInfoListRequest::new(None, None));
    assert_eq!(infos[0].profile_nickname.as_deref(), Some("Travel"));
    assert_eq!(set(&mut c, &[0x98; 10], "x"), 1, "iccidNotFound");
    assert_eq!(set(&mut c, &a, &"n".repeat(65)), 127);
    assert_eq!(set(&mut c, &a, ""), 0);
    assert_eq!(c.state().profiles[0].nickname, None);
}

#[test]
fn memory_reset_and_configured_addresses() {
    let (mut c, ch, a, _) = two_profiles(PolicyRules {
        disable_not_allowed: true,
        delete_not_allowed: true,
        ..PolicyRules::default()
    });
    enable(&mut c, ch, &a);
    // Addresses: root SM-DS by default, no default SM-DP+.
    let addresses: rsp::EuiccConfiguredAddressesResponse =
        decode_der(&es10(&mut c, ch, &[0xBF, 0x3C, 0x00])).unwrap();
    assert_eq!(
        addresses.root_ds_address,
        ferrosim_euicc::DEFAULT_ROOT_SMDS_ADDRESS
    );
    assert_eq!(addresses.default_dp_address, None);
    let set = encode_der(&rsp::SetDefaultDpAddressRequest::new(
        "smdp.example.org".into(),
    ))
    .unwrap();
    assert_eq!(es10(&mut c, ch, &set), [0xBF, 0x3F, 0x03, 0x80, 0x01, 0x00]);
    let bad = encode_der(&rsp::SetDefaultDpAddressRequest::new("smdp example".into())).unwrap();
    assert_eq!(es10(&mut c, ch, &bad), [0xBF, 0x3F, 0x03, 0x80, 0x01, 0x7F]);
    let addresses: rsp::EuiccConfiguredAddressesResponse =
        decode_der(&es10(&mut c, ch, &[0xBF, 0x3C, 0x00])).unwrap();
    assert_eq!(
        addresses.default_dp_address.as_deref(),
        Some("smdp.example.org")
    );

    let reset = |options: &[usize]| {
        let len = options.iter().max().map_or(0, |m| m + 1);
        let mut bits = BitString::repeat(false, len);
        for &o in options {
            bits.set(o, true);
        }
        encode_der(&rsp::EuiccMemoryResetRequest::new(bits)).unwrap()
    };
    // Test profiles: none here.
    assert_eq!(
        es10(&mut c, ch, &reset(&[1])),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x01]
    );
    // Operational profiles go, whatever their state and rules, without notifications.
    let notifications = c.state().notifications.len();
    assert_eq!(
        es10(&mut c, ch, &reset(&[0])),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x00]
    );
    assert!(c.state().profiles.is_empty());
    assert_eq!(c.state().notifications.len(), notifications);
    assert_eq!(
        es10(&mut c, ch, &reset(&[0, 1])),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x01]
    );
    // The default SM-DP+ address.
    assert_eq!(
        es10(&mut c, ch, &reset(&[2])),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x00]
    );
    assert_eq!(c.state().default_smdp_address, None);
    assert_eq!(
        es10(&mut c, ch, &reset(&[2])),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x01]
    );
}

#[test]
fn euicc_data_info_and_rat() {
    let mut c = card();
    let ch = open_isdr(&mut c);
    let eid = es10(&mut c, ch, &[0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A]);
    let eid: rsp::GetEuiccDataResponse = decode_der(&eid).unwrap();
    assert_eq!(
        *eid.eid_value.0,
        pki().euiccs[0].certificate.eid().unwrap().to_bcd()
    );
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x4F], 255).1,
        0x6A80
    );

    let ci = pki()
        .ci
        .certificate
        .subject_key_id()
        .unwrap()
        .as_bytes()
        .to_vec();
    let info1: rsp::EUICCInfo1 = decode_der(&es10(&mut c, ch, &[0xBF, 0x20, 0x00])).unwrap();
    assert_eq!(info1.svn.0.as_ref(), &[2, 2, 2]);
    let ids = |l: &[ferrosim_asn1::pkix::SubjectKeyIdentifier]| {
        l.iter().map(|k| k.0.0.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&info1.euicc_ci_pkid_list_for_verification),
        std::slice::from_ref(&ci)
    );
    assert_eq!(
        ids(&info1.euicc_ci_pkid_list_for_signing),
        std::slice::from_ref(&ci)
    );

    let info2 = sgp22_info2(&es10(&mut c, ch, &[0xBF, 0x22, 0x00]));
    assert_eq!(ids(&info2.euicc_ci_pkid_list_for_verification), [ci]);
    // Free memory shrinks when a profile is installed.
    let free = |info: &rsp::EUICCInfo2| {
        let resources = ferrosim_asn1::tlv::TlvIter::new(&info2_resources(info))
            .map(Result::unwrap)
            .find(|t| t.tag == 0x82)
            .unwrap()
            .value
            .to_vec();
        u32::from_be_bytes(resources.try_into().unwrap())
    };
    let before = free(&info2);
    FakeSmdp::new(pki()).install(&mut c, ch, &fixture().0, NO_RULES);
    let info2 = sgp22_info2(&es10(&mut c, ch, &[0xBF, 0x22, 0x00]));
    assert_eq!(before - free(&info2), fixture().0.len() as u32);

    let rat: rsp::GetRatResponse = decode_der(&es10(&mut c, ch, &[0xBF, 0x43, 0x00])).unwrap();
    assert_eq!(rat.rat.0.len(), 1);
    assert_eq!(
        rat.rat.0[0].allowed_operators[0].mcc_mnc.as_ref(),
        &[0xEE; 3]
    );
}

fn info2_resources(info: &rsp::EUICCInfo2) -> Vec<u8> {
    info.ext_card_resource.to_vec()
}

#[test]
fn state_survives_a_power_cycle_and_a_restart() {
    let (mut c, ch, a, _) = two_profiles(NO_RULES);
    enable(&mut c, ch, &a);
    let revision = c.state_revision();
    c.reset();
    assert_eq!(
        c.state_revision(),
        revision,
        "a reset changes nothing persistent"
    );
    assert_eq!(c.state().profiles.len(), 2);
    assert_eq!(state_of(&c, &a), ProfileState::Enabled);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("euicc-state.json");
    c.state().save(&path).unwrap();
    let loaded = EuiccState::load(&path).unwrap();
    assert_eq!(&loaded, c.state());
    let text = std::fs::read_to_string(&path).unwrap();
    // The secrets and the identity of the package are kept (not the package).
    assert!(text.contains("\"k\": \"") && text.contains("\"package_sha256\": \""));

    // A new card from the saved state knows its profiles and notifications.
    let mut restarted = VirtualEuicc::new(common::identity(), loaded);
    let ch = open_isdr(&mut restarted);
    let infos = profile_infos(
        &mut restarted,
        ch,
        &rsp::ProfileInfoListRequest::new(None, None),
    );
    assert_eq!(infos.len(), 2);
    let list: rsp::ListNotificationResponse =
        decode_der(&es10(&mut restarted, ch, &[0xBF, 0x28, 0x00])).unwrap();
    let rsp::ListNotificationResponse::notificationMetadataList(list) = list else {
        panic!("list error");
    };
    assert_eq!(list.len(), 3);
    // Filtered by operation: only the enable notification.
    let only_enable =
        encode_der(&rsp::ListNotificationRequest::new(Some(Op::Enable.event()))).unwrap();
    let filtered: rsp::ListNotificationResponse =
        decode_der(&es10(&mut restarted, ch, &only_enable)).unwrap();
    let rsp::ListNotificationResponse::notificationMetadataList(filtered) = filtered else {
        panic!("list error");
    };
    assert_eq!(filtered.len(), 1);
    // Retrieve by sequence number.
    let seq = list[2].seq_number.clone();
    let one = encode_der(&rsp::RetrieveNotificationsListRequest::new(Some(
        rsp::RetrieveNotificationsListRequestSearchCriteria::seqNumber(seq),
    )))
    .unwrap();
    let one: rsp::RetrieveNotificationsListResponse =
        decode_der(&es10(&mut restarted, ch, &one)).unwrap();
    let rsp::RetrieveNotificationsListResponse::notificationList(one) = one else {
        panic!("retrieve error");
    };
    assert_eq!(one.len(), 1);
    assert!(matches!(
        one[0],
        rsp::PendingNotification::otherSignedNotification(_)
    ));
    // The sequence continues after the restart.
    let (b_package, _) = package_with_iccid("894944000000000103");
    FakeSmdp::new(pki()).install(&mut restarted, ch, &b_package, NO_RULES);
    let last = restarted.state().notifications.last().unwrap();
    assert_eq!(last.seq_number, 4);
    assert_eq!(last.operation, Op::Install);
    assert_eq!(
        restarted.state().profiles[2].profile_class,
        ProfileClass::Operational
    );
}

/// Requests written byte by byte as SGP.22's ASN.1 encodes them (what lpac
/// and other LPAs send), not through this project's types.
#[test]
fn requests_encoded_by_other_lpas() {
    let (mut c, ch, a, _) = two_profiles(NO_RULES);
    enable(&mut c, ch, &a);
    // GetProfilesInfo, searchCriteria [0] { iccid }, with a tag list.
    let mut by_iccid = vec![0xBF, 0x2D, 0x13, 0xA0, 0x0C, 0x5A, 0x0A];
    by_iccid.extend_from_slice(&a);
    by_iccid.extend_from_slice(&[0x5C, 0x03, 0x5A, 0x9F, 0x70]);
    let infos: rsp::ProfileInfoListResponse = decode_der(&es10(&mut c, ch, &by_iccid)).unwrap();
    let rsp::ProfileInfoListResponse::profileInfoListOk(infos) = infos else {
        panic!("list error");
    };
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].iccid.as_ref().map(|i| *i.0), Some(a));
    assert!(infos[0].profile_name.is_none());
    // ListNotification for enable only: [1] NotificationEvent '0100'B.
    let list = es10(&mut c, ch, &[0xBF, 0x28, 0x04, 0x81, 0x02, 0x06, 0x40]);
    let list: rsp::ListNotificationResponse = decode_der(&list).unwrap();
    let rsp::ListNotificationResponse::notificationMetadataList(list) = list else {
        panic!("list error");
    };
    assert_eq!(list.len(), 1);
    let seq = u8::try_from(u64::try_from(&list[0].seq_number).unwrap()).unwrap();
    // RetrieveNotificationsList, searchCriteria [0] { seqNumber [0] }.
    let one = es10(&mut c, ch, &[0xBF, 0x2B, 0x05, 0xA0, 0x03, 0x80, 0x01, seq]);
    let one: rsp::RetrieveNotificationsListResponse = decode_der(&one).unwrap();
    let rsp::RetrieveNotificationsListResponse::notificationList(one) = one else {
        panic!("retrieve error");
    };
    assert_eq!(one.len(), 1);
    // NotificationSent [0] seqNumber.
    assert_eq!(
        es10(&mut c, ch, &[0xBF, 0x30, 0x03, 0x80, 0x01, seq]),
        [0xBF, 0x30, 0x03, 0x80, 0x01, 0x00]
    );
    // SetNickname: iccid, [16] nickname.
    let mut nick = vec![0xBF, 0x29, 0x10, 0x5A, 0x0A];
    nick.extend_from_slice(&a);
    nick.extend_from_slice(&[0x90, 0x02, b'h', b'i']);
    assert_eq!(
        es10(&mut c, ch, &nick),
        [0xBF, 0x29, 0x03, 0x80, 0x01, 0x00]
    );
    // SetDefaultDpAddress [0] address; eUICCMemoryReset [2] '001'B.
    let mut set = vec![0xBF, 0x3F, 0x0A, 0x80, 0x08];
    set.extend_from_slice(b"dp.local");
    assert_eq!(es10(&mut c, ch, &set), [0xBF, 0x3F, 0x03, 0x80, 0x01, 0x00]);
    assert_eq!(
        es10(&mut c, ch, &[0xBF, 0x34, 0x04, 0x82, 0x02, 0x05, 0x20]),
        [0xBF, 0x34, 0x03, 0x80, 0x01, 0x00]
    );
    assert_eq!(c.state().default_smdp_address, None);
}

/// A state file of format version 1 (before the state was slimmed: whole
/// packages, raw and decoded metadata, notifications with the certificates
/// appended, no `version`) loads into the same state, and is written back
/// as the current version.
#[test]
fn version_1_state_files_are_migrated() {
    let (mut c, ch, a, _) = two_profiles(NO_RULES);
    enable(&mut c, ch, &a);
    let packages = [
        package_with_iccid("894944000000000101").0,
        package_with_iccid("894944000000000102").0,
    ];
    let mut v1 = serde_json::to_value(c.state()).unwrap();
    for (profile, package) in v1["profiles"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(&packages)
    {
        let fields = profile.as_object_mut().unwrap();
        let metadata = fields.remove("metadata_der").unwrap();
        fields.insert("metadata".into(), metadata);
        fields.remove("package_len");
        fields.remove("package_sha256");
        fields.insert("package".into(), hex::encode(package).into());
        fields.insert("profile_name".into(), "TS.48 test profile".into());
        fields.insert("notification_configuration".into(), serde_json::json!([]));
    }
    for (json, stored) in v1["notifications"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(&c.state().notifications)
    {
        json["signed"] = hex::encode(c.pending_notification(stored)).into();
    }
    assert!(v1.get("version").is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.json");
    std::fs::write(&path, serde_json::to_vec(&v1).unwrap()).unwrap();
    let loaded = EuiccState::load(&path).unwrap();
    assert_eq!(&loaded, c.state());
    loaded.save(&path).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["version"], ferrosim_euicc::STATE_VERSION);

    // A later version, or a version that is not a number, is refused.
    for version in [
        serde_json::json!(3),
        serde_json::json!("2"),
        serde_json::json!(0),
    ] {
        let mut newer = saved.clone();
        newer["version"] = version;
        std::fs::write(&path, serde_json::to_vec(&newer).unwrap()).unwrap();
        assert!(matches!(
            EuiccState::load(&path),
            Err(ferrosim_euicc::Error::StateVersion { .. })
        ));
    }
    // Metadata that does not decode, or names another profile, is refused.
    for metadata in ["bf2500", &hex::encode(&c.state().profiles[1].metadata_der)] {
        let mut broken = saved.clone();
        broken["profiles"][0]["metadata_der"] = metadata.into();
        std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
        assert!(matches!(
            EuiccState::load(&path),
            Err(ferrosim_euicc::Error::StateContent { .. })
        ));
    }
}

/// EUICCInfo2 as an SGP.22 reader sees it: the SGP.32 fields (ipaMode,
/// iotSpecificInfo) left out.
fn sgp22_info2(der: &[u8]) -> rsp::EUICCInfo2 {
    let mut info: ferrosim_asn1::sgp32::EUICCInfo2 = decode_der(der).unwrap();
    assert!(info.ipa_mode.is_some() && info.iot_specific_info.is_some());
    info.ipa_mode = None;
    info.iot_specific_info = None;
    decode_der(&ferrosim_asn1::encode_der(&info).unwrap()).unwrap()
}

/// Installation times are a `Timestamp` in memory and whole seconds in state
/// files (as files written before always had them); a rollback point's
/// eimTransactionId is a `TransactionId` kept as lower-case hex. Old files
/// load; values that are not such are refused as a format error.
#[test]
fn state_files_keep_seconds_and_hex_and_refuse_garbage() {
    let (c, _, _, _) = two_profiles(NO_RULES);
    let installed = c.state().profiles[0].installed_at;
    assert_eq!(installed.millis() % 1000, 0, "kept to the second");
    assert!(installed > ferrosim_ids::Timestamp::from_millis(1_577_836_800_000));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    c.state().save(&path).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        saved["profiles"][0]["installed_at"],
        serde_json::json!(installed.millis() / 1000)
    );

    // A file written by an earlier version: seconds and lower-case hex.
    let mut old = saved.clone();
    old["profiles"][0]["installed_at"] = serde_json::json!(1_733_000_000u64);
    let enabled = c.state().profiles[0].iccid.to_string();
    old["switching"] = serde_json::json!({"rollback": {
        "enabled": enabled, "previous": null, "eim_id": "eim.example",
        "counter": 7, "transaction_id": "0a0b0c"}});
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    let loaded = EuiccState::load(&path).unwrap();
    assert_eq!(
        loaded.profiles[0].installed_at,
        ferrosim_ids::Timestamp::from_millis(1_733_000_000_000)
    );
    let rollback = loaded
        .switching
        .as_ref()
        .unwrap()
        .rollback
        .as_ref()
        .unwrap();
    assert_eq!(
        rollback.transaction_id.as_ref().unwrap().as_bytes(),
        [10, 11, 12]
    );
    loaded.save(&path).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        again["profiles"][0]["installed_at"],
        old["profiles"][0]["installed_at"]
    );
    assert_eq!(again["switching"], old["switching"]);
    assert_eq!(EuiccState::load(&path).unwrap(), loaded);

    for (pointer, garbage) in [
        ("/profiles/0/installed_at", serde_json::json!(-5)),
        ("/profiles/0/installed_at", serde_json::json!("1733000000")),
        ("/profiles/0/installed_at", serde_json::json!(1.5)),
        ("/profiles/0/installed_at", serde_json::json!(u64::MAX)),
        (
            "/profiles/0/installed_at",
            serde_json::json!(i64::MAX as u64 / 1000 + 1),
        ),
        ("/switching/rollback/transaction_id", serde_json::json!("")),
        (
            "/switching/rollback/transaction_id",
            serde_json::json!("zz"),
        ),
        (
            "/switching/rollback/transaction_id",
            serde_json::json!("0a0"),
        ),
        (
            "/switching/rollback/transaction_id",
            serde_json::json!("00".repeat(17)),
        ),
        ("/switching/rollback/transaction_id", serde_json::json!(12)),
    ] {
        let mut broken = old.clone();
        *broken.pointer_mut(pointer).unwrap() = garbage.clone();
        std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
        assert!(
            matches!(
                EuiccState::load(&path),
                Err(ferrosim_euicc::Error::StateFormat { .. })
            ),
            "{pointer} = {garbage}"
        );
    }
}
