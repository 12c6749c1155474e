//! A lab for the IPA's tests: ferrosim's SM-DP+ over loopback HTTPS (with
//! its test PKI), an eIM in the process relaying to that SM-DP+, and IoT
//! devices (virtual eUICCs holding the eIM's AddInitialEim, associated with
//! the eIM).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test crates

use std::sync::Arc;
use std::time::SystemTime;

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_crypto::SoftwareKey;
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_eim::{
    AssociationRequest, Counter, Eid, Eim, EimConfig, EimId, MemEimStore, Timestamp,
};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ipa::driver::inprocess::InProcessEim;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{Es10, Es10Options};
use ferrosim_server::relay::SmdpRelay;
use ferrosim_store::SqlStore;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

pub const EIM_ID: &str = "eim.ipa.test";
pub const TOKEN: i64 = 7;

pub type LabEim = InProcessEim<MemEimStore, SmdpRelay<SqlStore>>;

pub struct Lab {
    pub smdp: TestSmdp,
    pub eim: LabEim,
    pub eim_key: VerifyingKey,
    pub direct: HttpsEs9Client,
}

impl Lab {
    pub async fn start(devices: usize) -> Self {
        let smdp = TestSmdp::start(TestSmdpOptions {
            euiccs: devices,
            ..TestSmdpOptions::default()
        })
        .await
        .unwrap();
        let key = SoftwareKey::generate().unwrap();
        let eim_key = key.verifying_key().unwrap();
        let eim = Eim::new(
            MemEimStore::new(),
            EimConfig {
                eim_id: EimId::new(EIM_ID).unwrap(),
                key: Arc::new(key),
                trust: smdp.pki.trust_store().unwrap(),
            },
        );
        let trust = TlsTrust::Roots(TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap());
        let direct = HttpsEs9Client::new(&HttpsOptions::new(trust)).unwrap();
        let relay = SmdpRelay::new(Some(smdp.smdp.clone()), None);
        Self {
            smdp,
            eim: InProcessEim { eim, relay },
            eim_key,
            direct,
        }
    }

    pub fn eid(&self, n: usize) -> Eid {
        self.smdp.pki.euiccs[n].certificate.eid().unwrap()
    }

    /// Device `n`: a virtual eUICC with this eIM added (counter 0) and
    /// associated with the eIM.
    pub async fn device(&self, n: usize) -> VirtualEuicc {
        let eid = self.eid(n);
        let identity =
            EuiccIdentity::load_from_dir(&self.smdp.pki_dir, Some(&eid.digits())).unwrap();
        let mut card = VirtualEuicc::new(identity, EuiccState::default());
        let answer = es10(&mut card, &add_initial_eim(&self.eim_key));
        assert_eq!(&answer[..2], &[0xBF, 0x57], "AddInitialEim: {answer:02X?}");
        self.eim
            .eim
            .associate(
                AssociationRequest {
                    eid,
                    eum_certificate: self.smdp.pki.eum.certificate.der().to_vec(),
                    euicc_certificate: self.smdp.pki.euiccs[n].certificate.der().to_vec(),
                    counter: Counter::new(0).unwrap(),
                    association_token: Some(TOKEN),
                    euicc_version: ferrosim_asn1::esipa::Sgp32Version::V1_2,
                    emulated: false,
                },
                Timestamp::now(),
            )
            .await
            .unwrap();
        card
    }

    /// An activation code of a released order.
    pub async fn activation_code(&self) -> (String, String) {
        let (iccid, matching_id) = self.smdp.order(None, None).await.unwrap();
        (iccid, format!("1${}${matching_id}", self.smdp.address))
    }
}

/// Runs one ES10 command on the card over a channel of its own.
pub fn es10(card: &mut VirtualEuicc, command: &[u8]) -> Vec<u8> {
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let answer = es10.transmit_es10(command).unwrap();
    let _ = es10.close();
    answer
}

/// The AddInitialEimRequest installing the lab's eIM (counter 0, token).
pub fn add_initial_eim(eim_key: &VerifyingKey) -> Vec<u8> {
    let point = eim_key.to_uncompressed().unwrap();
    let mut spki = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    spki.extend_from_slice(&point);
    let config = sgp32::EimConfigurationData::new(
        EIM_ID.into(),
        Some("eim.ipa.test".into()),
        None,
        Some(Integer::from(0)),
        Some(Integer::from(TOKEN)),
        Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
            decode_der(&spki).unwrap(),
        )),
        None,
        None,
        None,
        None,
        None,
    );
    encode_der(&sgp32::AddInitialEimRequest::new(vec![config])).unwrap()
}
