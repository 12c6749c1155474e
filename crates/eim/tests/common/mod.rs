//! A lab for the eIM tests: a test PKI, the eIM over an in-memory store, and
//! a device that plays the IPA and the eUICC's IoT functions with the shared
//! SGP.32 helpers of `ferrosim-asn1` (what the virtual eUICC will do).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test crates

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::signed::sgp32::{
    eim_signature_input, euicc_package_request, package_result_from_parts, result_signature_input,
};
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_eim::{
    AssociationRequest, Counter, Eid, Eim, EimConfig, EimId, EsipaAnswer, MemEimStore, Timestamp,
};
use ferrosim_pki::{TestPki, TestPkiOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub const EIM_ID: &str = "eim.ferrosim.test";

/// One test PKI with a few eUICCs, generated once per test binary.
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        TestPki::generate(&TestPkiOptions {
            euicc_count: 4,
            ..TestPkiOptions::default()
        })
        .unwrap()
    })
}

pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

pub struct Lab {
    pub eim: Eim<MemEimStore>,
    pub eim_key: VerifyingKey,
    pub rng: StdRng,
}

impl Lab {
    pub fn new() -> Self {
        let key = SoftwareKey::generate().unwrap();
        let eim_key = key.verifying_key().unwrap();
        let config = EimConfig {
            eim_id: EimId::new(EIM_ID).unwrap(),
            key: Arc::new(key),
            trust: pki().trust_store().unwrap(),
        };
        Self {
            eim: Eim::new(MemEimStore::new(), config),
            eim_key,
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// Associates eUICC `n` of the test PKI (counter 10, token 0x42).
    pub async fn device(&mut self, n: usize, version: Sgp32Version) -> Device {
        let issued = &pki().euiccs[n];
        let eid = issued.certificate.eid().unwrap();
        self.eim
            .associate(
                AssociationRequest {
                    eid,
                    eum_certificate: pki().eum.certificate.der().to_vec(),
                    euicc_certificate: issued.certificate.der().to_vec(),
                    counter: Counter::new(10).unwrap(),
                    association_token: Some(0x42),
                    euicc_version: version,
                    emulated: false,
                },
                now(),
            )
            .await
            .unwrap();
        Device {
            eid,
            key: issued.signing_key().unwrap(),
            euicc_version: version,
            ipa_version: version,
            token: Some(0x42),
            last_counter: 10,
            seq: 0,
            eim_key: self.eim_key.clone(),
        }
    }

    /// Sends one DER message; the answer's bytes (empty for no content).
    pub async fn send(&self, der: &[u8]) -> Vec<u8> {
        match self.eim.handle_asn1(der, now()).await.unwrap() {
            EsipaAnswer::Message { der, .. } => der,
            EsipaAnswer::NoContent => Vec::new(),
        }
    }
}

/// What the device's eUICC did with a package.
pub struct Ran {
    /// The EuiccPackageResult (BF51) it returned.
    pub result: Vec<u8>,
    /// The package's eimSignature element (5F37 ..).
    pub eim_signature: Vec<u8>,
    /// The EuiccPackageSigned it ran.
    pub signed: sgp32::EuiccPackageSigned,
}

/// A device: its IPA and its eUICC's IoT functions.
pub struct Device {
    pub eid: Eid,
    pub key: SoftwareKey,
    pub euicc_version: Sgp32Version,
    pub ipa_version: Sgp32Version,
    pub token: Option<i64>,
    pub last_counter: u32,
    pub seq: i64,
    pub eim_key: VerifyingKey,
}

impl Device {
    pub fn eid_value(&self) -> rsp::Octet16 {
        rsp::Octet16(FixedOctetString::new(self.eid.to_bcd()))
    }

    /// GetEimPackageRequest in the IPA's version.
    pub fn get_eim_package(&self) -> Vec<u8> {
        match self.ipa_version {
            Sgp32Version::V1_2 => {
                encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
                    sgp32::GetEimPackageRequest::new(self.eid_value(), None, None, None),
                ))
                .unwrap()
            }
            Sgp32Version::V1_0 => [
                vec![0xBF, 0x4F, 0x17, 0x5A, 0x10],
                self.eid.to_bcd().to_vec(),
                vec![0x81, 0x03, 0x62, 0xF2, 0x10],
            ]
            .concat(),
        }
    }

    /// Runs a delivered EuiccPackageRequest as the eUICC does: verifies the
    /// eIM signature, the EID and the counter, and answers every PSMO with
    /// ok (a listProfileInfo with one enabled profile).
    pub fn run(&mut self, package: &[u8]) -> Ran {
        let part = euicc_package_request(package).unwrap();
        let token = self.token.map(Integer::from);
        self.eim_key
            .verify_raw(
                &eim_signature_input(part.signed, token.as_ref()).unwrap(),
                part.signature,
            )
            .expect("the eIM signature verifies");
        let signed: sgp32::EuiccPackageSigned = decode_der(part.signed).unwrap();
        assert_eq!(
            signed.eid_value,
            self.eid_value(),
            "the package is for this eUICC"
        );
        let counter = u32::try_from(signed.counter_value.clone()).unwrap();
        assert!(counter > self.last_counter, "counters strictly increase");
        self.last_counter = counter;
        let results = match &signed.euicc_package {
            sgp32::EuiccPackage::psmoList(psmos) => psmos.iter().map(ok_result).collect(),
            sgp32::EuiccPackage::ecoList(ecos) => ecos
                .iter()
                .map(|_| sgp32::EuiccResultData::deleteEimResult(sgp32::DeleteEimResult(0.into())))
                .collect(),
        };
        let result = self.signed_result(&signed, results, part.signature_tlv);
        Ran {
            result,
            eim_signature: part.signature_tlv.to_vec(),
            signed,
        }
    }

    /// A signed EuiccPackageResult for `signed` with `results`.
    pub fn signed_result(
        &mut self,
        signed: &sgp32::EuiccPackageSigned,
        results: Vec<sgp32::EuiccResultData>,
        eim_signature: &[u8],
    ) -> Vec<u8> {
        self.seq += 1;
        let data = sgp32::EuiccPackageResultDataSigned::new(
            signed.eim_id.clone(),
            signed.counter_value.clone(),
            signed.eim_transaction_id.clone(),
            self.seq.into(),
            results,
        );
        let der = encode_der(&data).unwrap();
        let sig = self.sign_result(&der, eim_signature);
        package_result_from_parts(false, &der, &sig)
    }

    /// A signed EuiccPackageErrorSigned for `signed`.
    pub fn signed_error(
        &mut self,
        signed: &sgp32::EuiccPackageSigned,
        code: i64,
        eim_signature: &[u8],
    ) -> Vec<u8> {
        let data = sgp32::EuiccPackageErrorDataSigned::new(
            signed.eim_id.clone(),
            signed.counter_value.clone(),
            signed.eim_transaction_id.clone(),
            sgp32::EuiccPackageErrorCode(code.into()),
        );
        let der = encode_der(&data).unwrap();
        let sig = self.sign_result(&der, eim_signature);
        package_result_from_parts(true, &der, &sig)
    }

    pub fn sign_result(&self, data: &[u8], eim_signature: &[u8]) -> [u8; 64] {
        let token = self.token.map(Integer::from);
        let input = result_signature_input(data, self.euicc_version, token.as_ref(), eim_signature)
            .unwrap();
        self.key.sign_raw(&input).unwrap()
    }

    /// ProvideEimPackageResult carrying one EuiccPackageResult, in the IPA's
    /// version (v1.2 with the EID, v1.0 without).
    pub fn provide(&self, result: &[u8]) -> Vec<u8> {
        match self.ipa_version {
            Sgp32Version::V1_2 => {
                let value = [tlv(0x5A, &self.eid.to_bcd()), result.to_vec()].concat();
                tlv(0xBF50, &value)
            }
            Sgp32Version::V1_0 => tlv(0xBF50, result),
        }
    }

    /// ProvideEimPackageResult carrying another EimPackageResult (v1.2).
    pub fn provide_other(&self, result: sgp32::EimPackageResult) -> Vec<u8> {
        encode_der(&sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(
            sgp32::ProvideEimPackageResult::new(Some(self.eid_value()), result),
        ))
        .unwrap()
    }
}

fn ok_result(psmo: &sgp32::Psmo) -> sgp32::EuiccResultData {
    use sgp32::EuiccResultData as R;
    let ok = || Integer::from(0);
    match psmo {
        sgp32::Psmo::enable(_) => R::enableResult(sgp32::EnableProfileResult(ok())),
        sgp32::Psmo::disable(_) => R::disableResult(sgp32::DisableProfileResult(ok())),
        sgp32::Psmo::delete(_) => R::deleteResult(sgp32::DeleteProfileResult(ok())),
        sgp32::Psmo::listProfileInfo(_) => {
            let mut info = sgp32::ProfileInfo::new(
                Some(rsp::Iccid(FixedOctetString::new(listed_iccid().to_bcd()))),
                None,
                Some(rsp::ProfileState(1.into())),
                None,
                Some("Op".into()),
                Some("Listed".into()),
                None,
                None,
                Some(rsp::ProfileClass(2.into())),
                None,
                None,
                None,
                None,
                None,
                None,
                false,
                None,
                None,
            );
            info.fallback_attribute = true;
            R::listProfileInfoResult(sgp32::ProfileInfoListResponse::profileInfoListOk(vec![
                info,
            ]))
        }
        sgp32::Psmo::getRAT(_) => R::getRATResult(rsp::RulesAuthorisationTable(vec![])),
        sgp32::Psmo::configureImmediateEnable(_) => {
            R::configureImmediateEnableResult(sgp32::ConfigureImmediateEnableResult(ok()))
        }
        sgp32::Psmo::setFallbackAttribute(_) => {
            R::setFallbackAttributeResult(sgp32::SetFallbackAttributeResult(ok()))
        }
        sgp32::Psmo::unsetFallbackAttribute(_) => {
            R::unsetFallbackAttributeResult(sgp32::UnsetFallbackAttributeResult(ok()))
        }
        sgp32::Psmo::setDefaultDpAddress(_) => {
            R::setDefaultDpAddressResult(sgp32::SetDefaultDpAddressResponse::new(ok()))
        }
    }
}

pub fn iccid(n: u8) -> ferrosim_eim::Iccid {
    ferrosim_eim::Iccid::from_body(&format!("89440000000000000{n:02}")).unwrap()
}

pub fn listed_iccid() -> ferrosim_eim::Iccid {
    iccid(99)
}

/// The EuiccPackageRequest inside a GetEimPackageResponse.
pub fn package_of(answer: &[u8]) -> Vec<u8> {
    let message: sgp32::EsipaMessageFromEimToIpa = decode_der(answer).unwrap();
    match message {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::euiccPackageRequest(r),
        ) => encode_der(&r).unwrap(),
        other => panic!("not a package: {other:?}"),
    }
}

/// An OctetString, for building values.
pub fn octets(bytes: &[u8]) -> OctetString {
    OctetString::from_slice(bytes)
}
