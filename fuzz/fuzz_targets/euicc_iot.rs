//! The virtual IoT eUICC after its first eIM was added (AddInitialEim with
//! a known eIM key and association token), so LoadEuiccPackage's checks
//! and the packages' operations are reached. The first input byte picks:
//!
//! - even: the rest is one ES10 command (any tag) sent as it is;
//! - odd: the rest is an `EuiccPackage` (PSMOs or eCOs); when it decodes,
//!   the target wraps it in an `EuiccPackageSigned` for this eUICC (the
//!   counter value from the second byte, so replays and values out of range
//!   happen too) and signs it with the eIM's key, as an eIM does.
//!
//! Every command must get an answer (or a typed error), never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::signed::sgp32::{eim_signature_input, euicc_package_request_from_parts};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::{Es10, Es10Options, Transport, TransportError};
use ferrosim_pki::{TestPki, TestPkiOptions};
use libfuzzer_sys::fuzz_target;

const EIM_ID: &str = "eim.fuzz";
const TOKEN: i64 = 5;

struct Lab {
    identity: EuiccIdentity,
    eid: Vec<u8>,
    eim_key: SoftwareKey,
    add_initial_eim: Vec<u8>,
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let pki = TestPki::generate(&TestPkiOptions::default()).expect("test PKI");
        let euicc = &pki.euiccs[0];
        let identity = EuiccIdentity::from_parts(
            euicc.certificate.der(),
            Arc::new(euicc.signing_key().expect("eUICC key")),
            pki.eum.certificate.der(),
            vec![pki.ci.certificate.der().to_vec()],
        )
        .expect("identity");
        let eid = euicc.certificate.eid().expect("EID").to_bcd().to_vec();
        let eim_key = SoftwareKey::generate().expect("eIM key");
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06,
            0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(eim_key.public_key_sec1());
        let config = sgp32::EimConfigurationData::new(
            EIM_ID.into(),
            Some("eim.fuzz.example".into()),
            None,
            Some(Integer::from(0)),
            Some(Integer::from(TOKEN)),
            Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
                decode_der(&spki).expect("SubjectPublicKeyInfo"),
            )),
            None,
            None,
            None,
            None,
            None,
        );
        let add_initial_eim =
            encode_der(&sgp32::AddInitialEimRequest::new(vec![config])).expect("AddInitialEim");
        Lab {
            identity,
            eid,
            eim_key,
            add_initial_eim,
        }
    })
}

struct Card(VirtualEuicc);

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.0.handle_apdu(command, SystemTime::now()))
    }
}

/// The signed LoadEuiccPackage for `package` with counter value `counter`.
fn signed_package(lab: &Lab, package: sgp32::EuiccPackage, counter: u8) -> Option<Vec<u8>> {
    let signed = sgp32::EuiccPackageSigned::new(
        EIM_ID.into(),
        rsp::Octet16(FixedOctetString::new(lab.eid.clone().try_into().ok()?)),
        Integer::from(counter),
        None,
        package,
    );
    let der = encode_der(&signed).ok()?;
    let input = eim_signature_input(&der, Some(&Integer::from(TOKEN))).ok()?;
    let signature = lab.eim_key.sign_raw(&input).ok()?;
    Some(euicc_package_request_from_parts(&der, &signature))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let lab = lab();
    let card = Card(VirtualEuicc::new(
        lab.identity.clone(),
        EuiccState::default(),
    ));
    let Ok(mut es10) = Es10::open(card, &Es10Options::default()) else {
        panic!("the virtual eUICC does not open");
    };
    let added: sgp32::AddInitialEimResponse = decode_der(
        &es10
            .transmit_es10(&lab.add_initial_eim)
            .expect("AddInitialEim answered"),
    )
    .expect("an AddInitialEimResponse");
    assert!(matches!(
        added,
        sgp32::AddInitialEimResponse::addInitialEimOk(_)
    ));
    if mode % 2 == 0 {
        let _ = es10.transmit_es10(rest);
        return;
    }
    let Some((&counter, package)) = rest.split_first() else {
        return;
    };
    let Ok(package) = decode_der::<sgp32::EuiccPackage>(package) else {
        return;
    };
    if let Some(request) = signed_package(lab, package, counter) {
        let _ = es10.transmit_es10(&request);
    }
});
