//! The SGP.32 side of the test card: a virtual eUICC associated with an
//! eIM whose key the test holds, profiles to install directly in its
//! state, and packages signed as an eIM signs them.

use super::{es10, identity, open_isdr, pki};
use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::signed::sgp32::{
    PackageResultSignature, eim_signature_input, euicc_package_request_from_parts,
    euicc_package_result, result_signature_input,
};
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::values::ProfileClass as AsnProfileClass;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::key::{KeySource, SoftwareKey};
use ferrosim_euicc::profile::PolicyRules;
use ferrosim_euicc::{EuiccState, InstalledProfile, ProfileClass, ProfileState, VirtualEuicc};

/// StoreMetadata DER, with `9F67 01 FF` appended inside when
/// `fallback_allowed`.
fn metadata_der(metadata: &rsp::StoreMetadataRequest, fallback_allowed: bool) -> Box<[u8]> {
    let der = encode_der(metadata).unwrap();
    if !fallback_allowed {
        return der.into_boxed_slice();
    }
    let tlv_parsed = ferrosim_asn1::tlv::Tlv::parse_exact(&der).unwrap();
    let value = [tlv_parsed.value, &[0x9F, 0x67, 0x01, 0xFF]].concat();
    tlv(0xBF25, &value).into_boxed_slice()
}

pub const EIM_ID: &str = "eim.ferrosim.test";
pub const TOKEN: i64 = 0x42;
pub const FIRST_COUNTER: i64 = 10;

/// `SubjectPublicKeyInfo` of a P-256 key.
pub fn spki(key: &VerifyingKey) -> sgp32::EimConfigurationDataEimPublicKeyData {
    let point = key.to_uncompressed().unwrap();
    let mut der = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    der.extend_from_slice(&point);
    sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(decode_der(&der).unwrap())
}

pub fn configuration(
    eim_id: &str,
    key: Option<&VerifyingKey>,
    counter: Option<i64>,
) -> sgp32::EimConfigurationData {
    sgp32::EimConfigurationData::new(
        eim_id.into(),
        Some("eim.example".into()),
        None,
        counter.map(Integer::from),
        Some(Integer::from(TOKEN)),
        key.map(spki),
        None,
        None,
        None,
        None,
        None,
    )
}

pub fn add_initial_eim(list: Vec<sgp32::EimConfigurationData>) -> Vec<u8> {
    encode_der(&sgp32::AddInitialEimRequest::new(list)).unwrap()
}

pub fn iccid(n: u8) -> rsp::Iccid {
    let iccid = ferrosim_saip::Iccid::from_body(&format!("89440000000000000{n:02}")).unwrap();
    rsp::Iccid(FixedOctetString::new(iccid.to_bcd()))
}

pub fn profile(n: u8, enabled: bool) -> InstalledProfile {
    profile_with(n, enabled, false)
}

/// A profile whose metadata carries `fallbackAllowed` TRUE when
/// `fallback_allowed` (SGP.32 StoreMetadata `9F67`).
pub fn profile_with(n: u8, enabled: bool, fallback_allowed: bool) -> InstalledProfile {
    let metadata = rsp::StoreMetadataRequest::new(
        iccid(n),
        "ferrosim".into(),
        format!("profile {n}"),
        None,
        None,
        AsnProfileClass::Operational.to_asn1(),
        None,
        None,
        None,
        None,
        None,
    );
    let mut isdp_aid = [0u8; 16];
    isdp_aid[..9].copy_from_slice(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF]);
    isdp_aid[15] = n;
    let digits = ferrosim_saip::Iccid::from_body(&format!("89440000000000000{n:02}")).unwrap();
    InstalledProfile {
        iccid: digits.clone(),
        isdp_aid,
        state: if enabled {
            ProfileState::Enabled
        } else {
            ProfileState::Disabled
        },
        nickname: None,
        profile_class: ProfileClass::Operational,
        policy_rules: PolicyRules::default(),
        metadata_der: metadata_der(&metadata, fallback_allowed),
        dp_oid: None,
        smdp_address: "smdp.example".to_owned(),
        smdp_oid: "2.999.10".to_owned(),
        imsi: None,
        aka_algorithm: None,
        k: None,
        opc: None,
        pins: Vec::new(),
        puks: Vec::new(),
        spn: None,
        apn: None,
        package_len: 0,
        package_sha256: [0; 32],
        installed_at: ferrosim_ids::Timestamp::EPOCH,
    }
}

/// A card with profile 1 enabled and profile 2 disabled, associated with
/// the eIM whose key is returned.
pub struct Iot {
    pub card: VirtualEuicc,
    pub channel: u8,
    pub eim: SoftwareKey,
    pub euicc_key: VerifyingKey,
    pub eid: [u8; 16],
}

impl Iot {
    pub fn new() -> Self {
        Self::with_profiles(vec![profile(1, true), profile(2, false)])
    }

    /// A card with these profiles, associated with a new eIM.
    pub fn with_profiles(profiles: Vec<InstalledProfile>) -> Self {
        let state = EuiccState {
            profiles,
            ..EuiccState::default()
        };
        let identity = identity();
        let eid = identity.eid().to_bcd();
        let mut card = VirtualEuicc::new(identity, state);
        let channel = open_isdr(&mut card);
        let eim = SoftwareKey::generate().unwrap();
        let key = eim.verifying_key().unwrap();
        let answer = es10(
            &mut card,
            channel,
            &add_initial_eim(vec![configuration(EIM_ID, Some(&key), Some(FIRST_COUNTER))]),
        );
        let answer: sgp32::AddInitialEimResponse = decode_der(&answer).unwrap();
        assert_eq!(
            answer,
            sgp32::AddInitialEimResponse::addInitialEimOk(
                sgp32::AddInitialEimResponseAddInitialEimOk(vec![
                    sgp32::AnonymousAddInitialEimResponseAddInitialEimOk::associationToken(
                        Integer::from(TOKEN)
                    )
                ])
            )
        );
        let euicc_key = pki().euiccs[0]
            .signing_key()
            .unwrap()
            .verifying_key()
            .unwrap();
        Self {
            card,
            channel,
            eim,
            euicc_key,
            eid,
        }
    }

    /// A package signed by `key` (the eIM's unless another is given).
    pub fn package(
        &self,
        eim_id: &str,
        eid: [u8; 16],
        counter: i64,
        package: sgp32::EuiccPackage,
        key: Option<&SoftwareKey>,
    ) -> Vec<u8> {
        let signed = sgp32::EuiccPackageSigned::new(
            eim_id.into(),
            rsp::Octet16(FixedOctetString::new(eid)),
            Integer::from(counter),
            None,
            package,
        );
        let der = encode_der(&signed).unwrap();
        let input = eim_signature_input(&der, Some(&Integer::from(TOKEN))).unwrap();
        let signature = key.unwrap_or(&self.eim).sign_raw(&input).unwrap();
        euicc_package_request_from_parts(&der, &signature)
    }

    pub fn load(&mut self, package: &[u8]) -> Vec<u8> {
        es10(&mut self.card, self.channel, package)
    }

    /// The result's signed data, after checking the eUICC's signature
    /// (v1.2 input: data then the association-token TLV).
    pub fn verified(&self, result: &[u8]) -> (bool, Vec<u8>) {
        let (error, part) = match euicc_package_result(result).unwrap() {
            PackageResultSignature::Result(part) => (false, part),
            PackageResultSignature::Error(part) => (true, part),
            PackageResultSignature::Unsigned => panic!("unsigned result"),
        };
        let input = result_signature_input(
            part.signed,
            Sgp32Version::V1_2,
            Some(&Integer::from(TOKEN)),
            &[],
        )
        .unwrap();
        self.euicc_key
            .verify_raw(&input, part.signature)
            .expect("the eUICC's result signature verifies");
        (error, part.signed.to_vec())
    }

    pub fn signed_error_code(&self, result: &[u8]) -> i64 {
        let (error, data) = self.verified(result);
        assert!(error, "a signed error");
        let data: sgp32::EuiccPackageErrorDataSigned = decode_der(&data).unwrap();
        i64::try_from(&data.euicc_package_error_code.0).unwrap()
    }

    pub fn counter(&mut self) -> i64 {
        let request = encode_der(&sgp32::GetEimConfigurationDataRequest::new(None)).unwrap();
        let answer = es10(&mut self.card, self.channel, &request);
        let answer: sgp32::GetEimConfigurationDataResponse = decode_der(&answer).unwrap();
        assert_eq!(answer.eim_configuration_data_list.len(), 1);
        let eim = &answer.eim_configuration_data_list[0];
        assert_eq!(eim.eim_id, EIM_ID);
        assert_eq!(eim.eim_fqdn.as_deref(), Some("eim.example"));
        i64::try_from(eim.counter_value.as_ref().unwrap()).unwrap()
    }
}

pub fn unsigned_error_code(result: &[u8]) -> i64 {
    assert_eq!(
        euicc_package_result(result).unwrap(),
        PackageResultSignature::Unsigned
    );
    match decode_der::<sgp32::EuiccPackageResult>(result).unwrap() {
        sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(e) => {
            assert_eq!(e.eim_id, EIM_ID);
            i64::try_from(&e.euicc_package_unsigned_error_code.unwrap().0).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

pub fn psmos(list: Vec<sgp32::Psmo>) -> sgp32::EuiccPackage {
    sgp32::EuiccPackage::psmoList(list)
}

pub fn enable(n: u8) -> sgp32::Psmo {
    sgp32::Psmo::enable(sgp32::PsmoEnable::new(iccid(n), None))
}

pub fn list() -> sgp32::Psmo {
    sgp32::Psmo::listProfileInfo(rsp::ProfileInfoListRequest::new(None, None))
}
