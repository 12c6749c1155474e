//! SGP.32 v1.2 profile switching on the virtual eUICC over APDUs:
//! enable with rollbackFlag and ProfileRollback (with its signed result),
//! the fallback attribute and the Fallback Mechanism, configureImmediateEnable
//! and ImmediateEnable, EUICCInfo2's IoT fields, and every refusal with its
//! spec code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::es10;
use common::iot::*;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::euicc_package_result;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_euicc::{EuiccState, ProfileState, VirtualEuicc};

/// The codes of a verified, accepted package's results, in order.
fn codes(iot: &Iot, result: &[u8]) -> Vec<i64> {
    let (error, data) = iot.verified(result);
    assert!(!error, "an executed package");
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    data.euicc_result
        .iter()
        .map(|r| {
            use sgp32::EuiccResultData as R;
            let c = match r {
                R::enableResult(c) => &c.0,
                R::disableResult(c) => &c.0,
                R::deleteResult(c) => &c.0,
                R::setFallbackAttributeResult(c) => &c.0,
                R::unsetFallbackAttributeResult(c) => &c.0,
                R::configureImmediateEnableResult(c) => &c.0,
                R::rollbackResult(c) => &c.0,
                R::processingTerminated(c) => c,
                other => panic!("{other:?}"),
            };
            i64::try_from(c).unwrap()
        })
        .collect()
}

/// Runs one package of PSMOs with the next counter.
fn run(iot: &mut Iot, counter: &mut i64, list: Vec<sgp32::Psmo>) -> Vec<i64> {
    *counter += 1;
    let package = iot.package(EIM_ID, iot.eid, *counter, psmos(list), None);
    let result = iot.load(&package);
    codes(iot, &result)
}

fn enable_with_rollback(n: u8) -> sgp32::Psmo {
    sgp32::Psmo::enable(sgp32::PsmoEnable::new(iccid(n), Some(())))
}

fn delete(n: u8) -> sgp32::Psmo {
    sgp32::Psmo::delete(sgp32::PsmoDelete::new(iccid(n)))
}

fn set_fallback(n: u8) -> sgp32::Psmo {
    sgp32::Psmo::setFallbackAttribute(sgp32::PsmoSetFallbackAttribute::new(iccid(n)))
}

fn unset_fallback() -> sgp32::Psmo {
    sgp32::Psmo::unsetFallbackAttribute(sgp32::PsmoUnsetFallbackAttribute::new())
}

fn rollback(iot: &mut Iot) -> sgp32::ProfileRollbackResponse {
    let request = encode_der(&sgp32::ProfileRollbackRequest::new(false)).unwrap();
    decode_der(&es10(&mut iot.card, iot.channel, &request)).unwrap()
}

fn execute_fallback(iot: &mut Iot) -> i64 {
    let request = encode_der(&sgp32::ExecuteFallbackMechanismRequest::new(true)).unwrap();
    let answer: sgp32::ExecuteFallbackMechanismResponse =
        decode_der(&es10(&mut iot.card, iot.channel, &request)).unwrap();
    i64::try_from(&answer.execute_fallback_mechanism_result).unwrap()
}

fn return_from_fallback(iot: &mut Iot) -> i64 {
    let request = encode_der(&sgp32::ReturnFromFallbackRequest::new(true)).unwrap();
    let answer: sgp32::ReturnFromFallbackResponse =
        decode_der(&es10(&mut iot.card, iot.channel, &request)).unwrap();
    i64::try_from(&answer.return_from_fallback_result).unwrap()
}

fn immediate_enable(iot: &mut Iot) -> i64 {
    let request = encode_der(&sgp32::ImmediateEnableRequest::new(false)).unwrap();
    let answer: sgp32::ImmediateEnableResponse =
        decode_der(&es10(&mut iot.card, iot.channel, &request)).unwrap();
    i64::try_from(&answer.immediate_enable_result).unwrap()
}

fn states(iot: &Iot) -> Vec<ProfileState> {
    iot.card.state().profiles.iter().map(|p| p.state).collect()
}

const ENABLED: ProfileState = ProfileState::Enabled;
const DISABLED: ProfileState = ProfileState::Disabled;

#[test]
fn rollback_needs_an_enable_with_rollback_flag_and_returns_a_signed_result() {
    let mut iot = Iot::new();
    let mut counter = FIRST_COUNTER;
    // No enable with rollbackFlag yet: rollbackNotAllowed (1).
    let answer = rollback(&mut iot);
    assert_eq!(answer.cmd_result, Integer::from(1));
    assert!(answer.e_uiccpackage_result.is_none());
    // A plain enable grants nothing.
    assert_eq!(run(&mut iot, &mut counter, vec![enable(2)]), vec![0]);
    assert_eq!(rollback(&mut iot).cmd_result, Integer::from(1));
    assert_eq!(states(&iot), vec![DISABLED, ENABLED]);

    // An enable with rollbackFlag: ProfileRollback goes back to profile 2.
    assert_eq!(
        run(&mut iot, &mut counter, vec![enable_with_rollback(1)]),
        vec![0]
    );
    let granted = counter;
    assert_eq!(states(&iot), vec![ENABLED, DISABLED]);
    let answer = rollback(&mut iot);
    assert_eq!(answer.cmd_result, Integer::from(0));
    assert_eq!(states(&iot), vec![DISABLED, ENABLED]);
    // Its result is signed by the eUICC over the v1.2 input and names the
    // enabling package.
    let result = encode_der(&answer.e_uiccpackage_result.expect("a package result")).unwrap();
    assert!(euicc_package_result(&result).is_ok());
    let (error, data) = iot.verified(&result);
    assert!(!error);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    assert_eq!(data.eim_id, EIM_ID);
    assert_eq!(data.counter_value, Integer::from(granted));
    assert_eq!(
        data.euicc_result,
        vec![sgp32::EuiccResultData::rollbackResult(
            sgp32::RollbackProfileResult(Integer::from(0))
        )]
    );
    // Only once.
    assert_eq!(rollback(&mut iot).cmd_result, Integer::from(1));

    // The rollback ends when the eIM is reached again (a package accepted)…
    assert_eq!(
        run(&mut iot, &mut counter, vec![enable_with_rollback(1)]),
        vec![0]
    );
    counter += 1;
    let package = iot.package(EIM_ID, iot.eid, counter, psmos(vec![list()]), None);
    let result = iot.load(&package);
    assert!(!iot.verified(&result).0);
    assert_eq!(rollback(&mut iot).cmd_result, Integer::from(1));
    assert_eq!(states(&iot), vec![ENABLED, DISABLED]);
    // …or with any other profile operation.
    assert_eq!(
        run(&mut iot, &mut counter, vec![enable_with_rollback(2)]),
        vec![0]
    );
    let disable = encode_der(&rsp::DisableProfileRequest::new(
        rsp::DisableProfileRequestProfileIdentifier::iccid(iccid(2)),
        false,
    ))
    .unwrap();
    es10(&mut iot.card, iot.channel, &disable);
    assert_eq!(rollback(&mut iot).cmd_result, Integer::from(1));

    // Deleting, in the same package, the profile a rollback returns to:
    // rollbackNotAvailable (20); the enable itself ran.
    assert_eq!(run(&mut iot, &mut counter, vec![enable(1)]), vec![0]);
    assert_eq!(
        run(
            &mut iot,
            &mut counter,
            vec![enable_with_rollback(2), delete(1)]
        ),
        vec![0, 20]
    );
    assert_eq!(iot.card.state().profiles.len(), 2);
    // Garbage is 6A80.
    let (_, sw) = common::es10_sw(&mut iot.card, iot.channel, &[0xBF, 0x58, 0x00], 120);
    assert_eq!(sw, 0x6A80);
}

#[test]
fn one_fallback_profile_allowed_by_its_metadata() {
    let mut iot = Iot::with_profiles(vec![
        profile_with(1, true, false),
        profile_with(2, false, true),
        profile_with(3, false, true),
    ]);
    let mut counter = FIRST_COUNTER;
    // Unknown profile: iccidOrAidNotFound (1); metadata without
    // fallbackAllowed: fallbackNotAllowed (2); nothing to unset (2).
    assert_eq!(run(&mut iot, &mut counter, vec![set_fallback(9)]), vec![1]);
    assert_eq!(run(&mut iot, &mut counter, vec![set_fallback(1)]), vec![2]);
    assert_eq!(run(&mut iot, &mut counter, vec![unset_fallback()]), vec![2]);
    // No fallback profile: fallbackNotAvailable (6) for both local functions.
    assert_eq!(execute_fallback(&mut iot), 6);
    assert_eq!(return_from_fallback(&mut iot), 6);

    // Profile 2 becomes the fallback profile (again: still ok); a second one
    // is refused with fallbackNotAllowed (2).
    assert_eq!(
        run(
            &mut iot,
            &mut counter,
            vec![set_fallback(2), set_fallback(2)]
        ),
        vec![0, 0]
    );
    assert_eq!(run(&mut iot, &mut counter, vec![set_fallback(3)]), vec![2]);
    assert_eq!(
        iot.card
            .state()
            .switching
            .as_ref()
            .unwrap()
            .fallback
            .as_deref(),
        Some(iot.card.state().profiles[1].iccid.as_str())
    );
    // The listed profiles show the attribute and what the metadata allows.
    counter += 1;
    let package = iot.package(EIM_ID, iot.eid, counter, psmos(vec![list()]), None);
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    let sgp32::EuiccResultData::listProfileInfoResult(
        sgp32::ProfileInfoListResponse::profileInfoListOk(infos),
    ) = &data.euicc_result[0]
    else {
        panic!("{:?}", data.euicc_result)
    };
    let flags: Vec<(bool, Option<bool>)> = infos
        .iter()
        .map(|i| (i.fallback_attribute, i.fallback_allowed))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, Some(false)),
            (true, Some(true)),
            (false, Some(true))
        ]
    );
    // The fallback profile cannot be deleted: returnFallbackProfile (21).
    assert_eq!(run(&mut iot, &mut counter, vec![delete(2)]), vec![21]);

    // ReturnFromFallback before any fallback: commandError (7).
    assert_eq!(return_from_fallback(&mut iot), 7);
    // The Fallback Mechanism: 2 enabled, 1 remembered.
    assert_eq!(execute_fallback(&mut iot), 0);
    assert_eq!(states(&iot), vec![DISABLED, ENABLED, DISABLED]);
    // While in use the attribute stays where it is: fallbackProfileEnabled (3).
    assert_eq!(run(&mut iot, &mut counter, vec![unset_fallback()]), vec![3]);
    // Already enabled: profileNotInDisabledState (2).
    assert_eq!(execute_fallback(&mut iot), 2);
    assert_eq!(return_from_fallback(&mut iot), 0);
    assert_eq!(states(&iot), vec![ENABLED, DISABLED, DISABLED]);
    assert_eq!(return_from_fallback(&mut iot), 7, "no longer in fallback");

    // Unset, then another profile may take the attribute.
    assert_eq!(
        run(
            &mut iot,
            &mut counter,
            vec![unset_fallback(), set_fallback(3)]
        ),
        vec![0, 0]
    );
    // Deleting the fallback profile through ES10c clears the attribute too.
    let delete = encode_der(&rsp::DeleteProfileRequest::iccid(iccid(3))).unwrap();
    es10(&mut iot.card, iot.channel, &delete);
    assert_eq!(iot.card.state().profiles.len(), 2);
    assert!(iot.card.state().switching.is_none(), "nothing left to keep");
    assert_eq!(execute_fallback(&mut iot), 6);
}

#[test]
fn immediate_enable_follows_its_configuration() {
    let mut iot = Iot::new();
    let mut counter = FIRST_COUNTER;
    // Not configured: immediateEnableNotAvailable (1).
    assert_eq!(immediate_enable(&mut iot), 1);
    let configure = |flag: bool| {
        sgp32::Psmo::configureImmediateEnable(sgp32::PsmoConfigureImmediateEnable::new(
            flag.then_some(()),
            None,
            Some("smdp.example".into()),
        ))
    };
    assert_eq!(run(&mut iot, &mut counter, vec![configure(false)]), vec![0]);
    assert_eq!(immediate_enable(&mut iot), 1);
    assert_eq!(run(&mut iot, &mut counter, vec![configure(true)]), vec![0]);
    // Allowed, but no profile downloaded since: noSessionContext (4).
    assert_eq!(immediate_enable(&mut iot), 4);
    let config = iot
        .card
        .state()
        .switching
        .as_ref()
        .unwrap()
        .immediate_enable
        .clone()
        .unwrap();
    assert!(config.allowed);
    assert_eq!(config.default_smdp_address.as_deref(), Some("smdp.example"));
    // The IoT memory reset forgets the configuration (ok, then 1: none).
    for expected in [0, 1] {
        let reset = encode_der(&sgp32::EuiccMemoryResetRequest::new(
            ferrosim_asn1::rasn::types::BitString::from_iter([
                false, false, false, false, false, false, true,
            ]),
        ))
        .unwrap();
        let answer: sgp32::EuiccMemoryResetResponse =
            decode_der(&es10(&mut iot.card, iot.channel, &reset)).unwrap();
        assert_eq!(
            answer.reset_immediate_enable_config_result,
            Some(Integer::from(expected))
        );
    }
    assert_eq!(immediate_enable(&mut iot), 1);
}

#[test]
fn euicc_info2_carries_the_iot_fields() {
    let mut iot = Iot::new();
    let answer = es10(&mut iot.card, iot.channel, &[0xBF, 0x22, 0x00]);
    let info: sgp32::EUICCInfo2 = decode_der(&answer).unwrap();
    assert_eq!(info.ipa_mode, Some(sgp32::IpaMode(Integer::from(0))));
    let iot_info = info.iot_specific_info.expect("iotSpecificInfo");
    assert_eq!(iot_info.fallback_supported, Some(()));
    assert_eq!(
        encode_der(&iot_info.iot_version[0]).unwrap(),
        [4, 3, 1, 2, 0]
    );
}

#[test]
fn switching_state_survives_save_and_load_and_stays_small() {
    let mut iot = Iot::with_profiles(vec![
        profile_with(1, true, false),
        profile_with(2, false, true),
    ]);
    let mut counter = FIRST_COUNTER;
    assert_eq!(
        run(
            &mut iot,
            &mut counter,
            vec![set_fallback(2), enable_with_rollback(2)]
        ),
        vec![0, 0]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    iot.card.state().save(&path).unwrap();
    let state = EuiccState::load(&path).unwrap();
    assert_eq!(&state, iot.card.state());
    let switching = state.switching.as_ref().unwrap();
    assert!(switching.rollback.is_some() && switching.fallback.is_some());
    // A reloaded card still rolls back.
    let mut reloaded = Iot {
        card: VirtualEuicc::new(common::identity(), state),
        channel: 0,
        ..iot
    };
    reloaded.channel = common::open_isdr(&mut reloaded.card);
    assert_eq!(rollback(&mut reloaded).cmd_result, Integer::from(0));
    // A consumer card keeps no switching state at all.
    assert!(common::card().state().switching.is_none());
    assert!(std::mem::size_of::<Option<Box<ferrosim_euicc::state::Switching>>>() <= 8);
}
