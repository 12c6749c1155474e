//! The SGP.32 IoT functions of the virtual eUICC over APDUs: AddInitialEim,
//! GetEimConfigurationData and LoadEuiccPackage, with every refusal and its
//! spec code, and the eUICC's result signatures verified.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::iot::*;
use common::{card, es10, es10_sw, identity, open_isdr, pki};
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::{PackageResultSignature, euicc_package_result};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::key::SoftwareKey;
use ferrosim_euicc::{EuiccState, ProfileState, VirtualEuicc};

#[test]
fn package_runs_and_its_result_is_signed() {
    let mut iot = Iot::new();
    assert_eq!(iot.counter(), FIRST_COUNTER);
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 1,
        psmos(vec![enable(2), list()]),
        None,
    );
    let result = iot.load(&package);
    let (error, data) = iot.verified(&result);
    assert!(!error);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    assert_eq!(data.eim_id, EIM_ID);
    assert_eq!(data.counter_value, Integer::from(FIRST_COUNTER + 1));
    assert_eq!(data.euicc_result.len(), 2);
    assert_eq!(
        data.euicc_result[0],
        sgp32::EuiccResultData::enableResult(sgp32::EnableProfileResult(Integer::from(0)))
    );
    let sgp32::EuiccResultData::listProfileInfoResult(
        sgp32::ProfileInfoListResponse::profileInfoListOk(profiles),
    ) = &data.euicc_result[1]
    else {
        panic!("{:?}", data.euicc_result[1])
    };
    let enabled: Vec<_> = profiles
        .iter()
        .filter(|p| p.profile_state == Some(rsp::ProfileState(Integer::from(1))))
        .map(|p| p.iccid.clone())
        .collect();
    assert_eq!(enabled, vec![Some(iccid(2))]);
    assert_eq!(iot.counter(), FIRST_COUNTER + 1);
    // Enabling 2 disabled 1, as ES10c EnableProfile does.
    let states: Vec<ProfileState> = iot.card.state().profiles.iter().map(|p| p.state).collect();
    assert_eq!(states, vec![ProfileState::Disabled, ProfileState::Enabled]);

    // An eCO: listEim.
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 5,
        sgp32::EuiccPackage::ecoList(vec![sgp32::Eco::listEim(sgp32::EcoListEim {})]),
        None,
    );
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    let sgp32::EuiccResultData::listEimResult(sgp32::ListEimResult::eimIdList(ids)) =
        &data.euicc_result[0]
    else {
        panic!("{:?}", data.euicc_result)
    };
    assert_eq!(ids[0].eim_id, EIM_ID);
    assert_eq!(iot.counter(), FIRST_COUNTER + 5, "counters may jump ahead");

    // An operation this eUICC does not run ends the list, said so.
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 6,
        psmos(vec![sgp32::Psmo::getRAT(sgp32::PsmoGetRAT {}), enable(1)]),
        None,
    );
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    assert_eq!(
        data.euicc_result,
        vec![sgp32::EuiccResultData::processingTerminated(Integer::from(
            127
        ))]
    );
}

#[test]
fn refusals_carry_their_spec_codes_and_keep_the_counter() {
    let mut iot = Iot::new();
    let good = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 1,
        psmos(vec![list()]),
        None,
    );
    let result = iot.load(&good);
    assert!(!iot.verified(&result).0);

    // replayError (4): the same package again, and an older counter.
    let result = iot.load(&good);
    assert_eq!(iot.signed_error_code(&result), 4);
    let old = iot.package(EIM_ID, iot.eid, FIRST_COUNTER, psmos(vec![list()]), None);
    let result = iot.load(&old);
    assert_eq!(iot.signed_error_code(&result), 4);

    // counterValueOutOfRange (6).
    let far = iot.package(EIM_ID, iot.eid, 0x80_0000, psmos(vec![list()]), None);
    let result = iot.load(&far);
    assert_eq!(iot.signed_error_code(&result), 6);

    // invalidEid (3): a package for another eUICC.
    let mut other = iot.eid;
    other[15] ^= 1;
    let elsewhere = iot.package(
        EIM_ID,
        other,
        FIRST_COUNTER + 2,
        psmos(vec![enable(2)]),
        None,
    );
    let result = iot.load(&elsewhere);
    assert_eq!(iot.signed_error_code(&result), 3);

    // Signed by another key, or from an eIM not associated: unsigned undefinedError (127).
    let stranger = SoftwareKey::generate().unwrap();
    let forged = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 2,
        psmos(vec![enable(2)]),
        Some(&stranger),
    );
    assert_eq!(unsigned_error_code(&iot.load(&forged)), 127);
    let mut tampered = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 2,
        psmos(vec![enable(2)]),
        None,
    );
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(unsigned_error_code(&iot.load(&tampered)), 127);
    let unknown = iot.package("other.eim", iot.eid, FIRST_COUNTER + 2, psmos(vec![]), None);
    let result = iot.load(&unknown);
    assert!(matches!(
        decode_der::<sgp32::EuiccPackageResult>(&result).unwrap(),
        sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(e) if e.eim_id == "other.eim"
    ));

    // Nothing refused moved the counter or ran anything.
    assert_eq!(iot.counter(), FIRST_COUNTER + 1);
    let states: Vec<ProfileState> = iot.card.state().profiles.iter().map(|p| p.state).collect();
    assert_eq!(states, vec![ProfileState::Enabled, ProfileState::Disabled]);

    // Garbage is 6A80, not a result.
    for garbage in [
        &[0xBF, 0x51, 0x00][..],
        &[0xBF, 0x51, 0x03, 0x30, 0x01, 0x00][..],
        &[0xBF, 0x51, 0x05, 0x30, 0x00, 0x5F, 0x37, 0x00][..],
    ] {
        let (_, sw) = es10_sw(&mut iot.card, iot.channel, garbage, 120);
        assert_eq!(sw, 0x6A80, "{garbage:02X?}");
    }
}

#[test]
fn add_initial_eim_refusals() {
    let eim = SoftwareKey::generate().unwrap().verifying_key().unwrap();
    let refused = |list: Vec<sgp32::EimConfigurationData>, expected: i64| {
        let mut card = card();
        let channel = open_isdr(&mut card);
        let answer = es10(&mut card, channel, &add_initial_eim(list));
        assert_eq!(
            decode_der::<sgp32::AddInitialEimResponse>(&answer).unwrap(),
            sgp32::AddInitialEimResponse::addInitialEimError(Integer::from(expected))
        );
        assert!(card.state().eims.is_empty());
    };
    // counterValueOutOfRange (6), commandError (7) without a key or with a
    // key that is no P-256 point, or with nothing in the list;
    // insufficientMemory (1) for more eIMs than the eUICC keeps.
    refused(vec![configuration(EIM_ID, Some(&eim), Some(0x80_0000))], 6);
    refused(vec![configuration(EIM_ID, Some(&eim), Some(-1))], 6);
    refused(vec![configuration(EIM_ID, None, Some(1))], 7);
    let mut bad_key = configuration(EIM_ID, Some(&eim), Some(1));
    if let Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(spki)) =
        &mut bad_key.eim_public_key_data
    {
        let mut point = spki.subject_public_key.as_raw_slice().to_vec();
        point[10] ^= 0xFF;
        spki.subject_public_key = ferrosim_asn1::rasn::types::BitString::from_vec(point);
    }
    refused(vec![bad_key], 7);
    refused(vec![], 7);
    refused(
        (0..5)
            .map(|i| configuration(&format!("eim{i}"), Some(&eim), None))
            .collect(),
        1,
    );

    // associatedEimAlreadyExists (2) once one is there.
    let mut iot = Iot::new();
    let answer = es10(
        &mut iot.card,
        iot.channel,
        &add_initial_eim(vec![configuration("second", Some(&eim), None)]),
    );
    assert_eq!(
        decode_der::<sgp32::AddInitialEimResponse>(&answer).unwrap(),
        sgp32::AddInitialEimResponse::addInitialEimError(Integer::from(2))
    );
    // Not decodable: 6A80.
    let (_, sw) = es10_sw(
        &mut iot.card,
        iot.channel,
        &[0xBF, 0x57, 0x02, 0x01, 0x00],
        120,
    );
    assert_eq!(sw, 0x6A80);
    let (_, sw) = es10_sw(
        &mut iot.card,
        iot.channel,
        &[0xBF, 0x55, 0x02, 0x01, 0x00],
        120,
    );
    assert_eq!(sw, 0x6A80);
}

#[test]
fn eim_configuration_survives_save_and_load() {
    let mut iot = Iot::new();
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 3,
        psmos(vec![list()]),
        None,
    );
    iot.load(&package);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("euicc.json");
    iot.card.state().save(&path).unwrap();
    let loaded = EuiccState::load(&path).unwrap();
    assert_eq!(&loaded, iot.card.state());
    assert_eq!(loaded.eims[0].counter, (FIRST_COUNTER + 3) as u32);
    assert_eq!(loaded.eims[0].association_token, Some(TOKEN));
    // A replay after a power cycle is still refused.
    let mut card = VirtualEuicc::new(identity(), loaded);
    let channel = open_isdr(&mut card);
    let result = es10(&mut card, channel, &package);
    assert_eq!(iot.signed_error_code(&result), 4);
}

#[test]
fn ecos_add_update_and_delete_eims() {
    let mut iot = Iot::new();
    let second = SoftwareKey::generate().unwrap();
    let second_key = second.verifying_key().unwrap();
    let mut update = configuration(EIM_ID, None, None);
    update.eim_fqdn = Some("eim2.example".into());
    update.association_token = None;
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 1,
        sgp32::EuiccPackage::ecoList(vec![
            sgp32::Eco::addEim(configuration("second", Some(&second_key), None)),
            sgp32::Eco::addEim(configuration("second", Some(&second_key), None)),
            sgp32::Eco::addEim(configuration("third", None, None)),
            sgp32::Eco::updateEim(update),
            sgp32::Eco::updateEim(configuration("nope", None, Some(0x80_0000))),
            sgp32::Eco::deleteEim(sgp32::EcoDeleteEim::new("nope".into())),
        ]),
        None,
    );
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    use sgp32::EuiccResultData as R;
    let code = |c: i64| Integer::from(c);
    assert_eq!(
        data.euicc_result,
        vec![
            R::addEimResult(sgp32::AddEimResult::associationToken(code(TOKEN))),
            // associatedEimAlreadyExists, then commandError (no key).
            R::addEimResult(sgp32::AddEimResult::addEimResultCode(code(2))),
            R::addEimResult(sgp32::AddEimResult::addEimResultCode(code(7))),
            R::updateEimResult(sgp32::UpdateEimResult(code(0))),
            // eimNotFound for an update and a delete of an unknown eIM.
            R::updateEimResult(sgp32::UpdateEimResult(code(1))),
            R::deleteEimResult(sgp32::DeleteEimResult(code(1))),
        ]
    );
    let eims = &iot.card.state().eims;
    assert_eq!(eims.len(), 2);
    assert_eq!(eims[0].fqdn.as_deref(), Some("eim2.example"));
    assert_eq!(
        eims[0].association_token,
        Some(TOKEN),
        "kept when not given"
    );

    // The new eIM's packages are accepted with its own key and counter.
    let package = iot.package("second", iot.eid, 1, psmos(vec![list()]), Some(&second));
    let result = iot.load(&package);
    assert!(!iot.verified(&result).0);

    // Deleting: the second one (ok), then the last one (lastEimDeleted, 2).
    let package = iot.package(
        "second",
        iot.eid,
        2,
        sgp32::EuiccPackage::ecoList(vec![sgp32::Eco::deleteEim(sgp32::EcoDeleteEim::new(
            "second".into(),
        ))]),
        Some(&second),
    );
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    assert_eq!(
        data.euicc_result,
        vec![R::deleteEimResult(sgp32::DeleteEimResult(code(0)))]
    );
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 2,
        sgp32::EuiccPackage::ecoList(vec![sgp32::Eco::deleteEim(sgp32::EcoDeleteEim::new(
            EIM_ID.into(),
        ))]),
        None,
    );
    let result = iot.load(&package);
    let (_, data) = iot.verified(&result);
    let data: sgp32::EuiccPackageResultDataSigned = decode_der(&data).unwrap();
    assert_eq!(
        data.euicc_result,
        vec![R::deleteEimResult(sgp32::DeleteEimResult(code(2)))]
    );
    assert!(iot.card.state().eims.is_empty());
    // With no eIM left, a package is from an unknown eIM.
    let package = iot.package(
        EIM_ID,
        iot.eid,
        FIRST_COUNTER + 3,
        psmos(vec![list()]),
        None,
    );
    assert_eq!(unsigned_error_code(&iot.load(&package)), 127);
}

#[test]
fn get_certs_gives_the_chain_the_results_verify_with() {
    let mut iot = Iot::new();
    let request = encode_der(&sgp32::GetCertsRequest::new(None)).unwrap();
    let answer = es10(&mut iot.card, iot.channel, &request);
    let sgp32::GetCertsResponse::certs(certs) = decode_der(&answer).unwrap() else {
        panic!("no certificates")
    };
    assert_eq!(
        encode_der(&certs.euicc_certificate).unwrap(),
        pki().euiccs[0].certificate.der()
    );
    assert_eq!(
        encode_der(&certs.eum_certificate).unwrap(),
        pki().eum.certificate.der()
    );
    // invalidCiPKId (1) for a CI this eUICC does not sign under.
    let other = ferrosim_asn1::pkix::SubjectKeyIdentifier(ferrosim_asn1::pkix::KeyIdentifier(
        ferrosim_asn1::rasn::types::OctetString::from_static(&[0xAB; 20]),
    ));
    let request = encode_der(&sgp32::GetCertsRequest::new(Some(other))).unwrap();
    let answer = es10(&mut iot.card, iot.channel, &request);
    assert_eq!(
        decode_der::<sgp32::GetCertsResponse>(&answer).unwrap(),
        sgp32::GetCertsResponse::getCertsError(Integer::from(1))
    );
}

#[test]
fn iot_memory_reset_clears_the_eim_configuration_on_request() {
    let mut iot = Iot::new();
    let reset = |bits: &[usize]| {
        let mut options = ferrosim_asn1::rasn::types::BitString::repeat(false, 7);
        for &b in bits {
            options.set(b, true);
        }
        encode_der(&sgp32::EuiccMemoryResetRequest::new(options)).unwrap()
    };
    // Test profiles only: none, so nothingToDelete; the eIMs stay.
    let answer = es10(&mut iot.card, iot.channel, &reset(&[1]));
    let answer: sgp32::EuiccMemoryResetResponse = decode_der(&answer).unwrap();
    assert_eq!(answer.reset_result, Integer::from(1));
    assert_eq!(answer.reset_eim_result, None);
    assert_eq!(iot.card.state().eims.len(), 1);
    // Operational profiles, the eIM configuration and the immediate-enable
    // configuration (not kept by this eUICC: resetIECNotSupported).
    let answer = es10(&mut iot.card, iot.channel, &reset(&[0, 5, 6]));
    let answer: sgp32::EuiccMemoryResetResponse = decode_der(&answer).unwrap();
    assert_eq!(answer.reset_result, Integer::from(0));
    assert_eq!(answer.reset_eim_result, Some(Integer::from(0)));
    assert_eq!(
        answer.reset_immediate_enable_config_result,
        Some(Integer::from(1))
    );
    assert!(iot.card.state().profiles.is_empty());
    assert!(iot.card.state().eims.is_empty());
    // Again: nothing left to delete.
    let answer = es10(&mut iot.card, iot.channel, &reset(&[5]));
    let answer: sgp32::EuiccMemoryResetResponse = decode_der(&answer).unwrap();
    assert_eq!(answer.reset_eim_result, Some(Integer::from(1)));
    // A new first eIM can now be added.
    let key = iot.eim.verifying_key().unwrap();
    let answer = es10(
        &mut iot.card,
        iot.channel,
        &add_initial_eim(vec![configuration(EIM_ID, Some(&key), Some(1))]),
    );
    assert!(matches!(
        decode_der::<sgp32::AddInitialEimResponse>(&answer).unwrap(),
        sgp32::AddInitialEimResponse::addInitialEimOk(_)
    ));
    let (_, sw) = es10_sw(&mut iot.card, iot.channel, &[0xBF, 0x64, 0x01, 0x00], 120);
    assert_eq!(sw, 0x6A80);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// A package with any byte changed is never run: the answer is 6A80 or
    /// a refusal, the counter and the profiles stay as they were.
    #[test]
    fn a_changed_byte_never_runs_a_package(at in 0usize..4096, xor in 1u8..=255) {
        let mut iot = Iot::new();
        let mut package = iot.package(EIM_ID, iot.eid, FIRST_COUNTER + 1, psmos(vec![enable(2)]), None);
        let at = at % package.len();
        package[at] ^= xor;
        let (answer, sw) = es10_sw(&mut iot.card, iot.channel, &package, 120);
        if sw == 0x9000 {
            let executed = matches!(
                euicc_package_result(&answer),
                Ok(PackageResultSignature::Result(_))
            );
            proptest::prop_assert!(!executed, "a changed package ran (byte {})", at);
        }
        proptest::prop_assert_eq!(iot.counter(), FIRST_COUNTER);
        let states: Vec<ProfileState> = iot.card.state().profiles.iter().map(|p| p.state).collect();
        proptest::prop_assert_eq!(states, vec![ProfileState::Enabled, ProfileState::Disabled]);
    }
}
