//! The ES10 driver against the virtual eUICC for the functions the
//! download does not use: nickname, addresses, rules authorisation table,
//! memory reset, and the notifications' signed bytes as the LPA hands them on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use ferrosim_asn1::tlv::Tlv;
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{Consent, DownloadRequest, download_profile};
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::es10::types::{MemoryResetOptions, NotificationOperation, ProfileId};
use ferrosim_lpa::{ActivationCode, Es10, Es10Error, Es10Options, SmdpAddress};
use ferrosim_pki::RspCertificate;
use ferrosim_saip::Iccid;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

#[tokio::test]
async fn management_functions_and_signed_notifications() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let eid = smdp.pki.eids()[0];
    let identity = EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid.to_string())).unwrap();
    let euicc_cert = smdp.pki.euicc(&eid).unwrap().certificate.clone();
    let mut card = VirtualEuicc::new(identity, EuiccState::default());
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options {
            block_size: 255,
            ..Es10Options::default()
        },
    )
    .unwrap();

    // A profile to work on.
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let code =
        ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(&matching_id)).unwrap();
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    download_profile(&mut es10, &es9, &DownloadRequest::new(&code, None), |_| {
        Consent::Accept
    })
    .await
    .unwrap();
    let iccid = Iccid::new(&iccid).unwrap();
    let id = ProfileId::Iccid(iccid.clone());

    // Nickname.
    es10.set_nickname(&iccid, "work phone").unwrap();
    let profiles = es10.get_profiles_info(Some(&id)).unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].nickname.as_deref(), Some("work phone"));
    let unknown = Iccid::from_body("894400000000009999").unwrap();
    assert!(matches!(
        es10.set_nickname(&unknown, "x"),
        Err(Es10Error::Refused {
            function: "SetNickname",
            code: 1
        })
    ));
    assert!(
        es10.get_profiles_info(Some(&ProfileId::Iccid(unknown)))
            .unwrap()
            .is_empty()
    );

    // Addresses.
    assert_eq!(
        es10.configured_addresses().unwrap().default_dp_address,
        None
    );
    es10.set_default_dp_address("smdp.example.com").unwrap();
    let addresses = es10.configured_addresses().unwrap();
    assert_eq!(
        addresses.default_dp_address.as_deref(),
        Some("smdp.example.com")
    );
    assert!(!addresses.root_ds_address.is_empty());

    // Rules authorisation table.
    let rat = es10.get_rat().unwrap();
    assert_eq!(Tlv::parse_exact(&rat).unwrap().tag, 0xBF43);

    // Enable: the notification the LPA retrieves carries the eUICC's signature
    // over tbsOtherNotification, exactly as signed.
    es10.enable_profile(&id, false).unwrap();
    let pending = es10.retrieve_notifications(None).unwrap();
    let enable = pending
        .iter()
        .find(|n| n.metadata.operation == Some(NotificationOperation::Enable))
        .unwrap();
    assert_eq!(enable.metadata.iccid.as_deref(), Some(iccid.as_str()));
    let outer = Tlv::parse_tagged(&enable.raw, 0x30).unwrap();
    let tbs = outer.require(0xBF2F).unwrap();
    let signature = outer.require(0x5F37).unwrap();
    let cert = RspCertificate::from_der(euicc_cert.der()).unwrap();
    cert.verifying_key()
        .verify_raw(tbs.raw, signature.value)
        .unwrap();
    let seq = enable.metadata.seq_number;
    es10.remove_notification(seq).unwrap();
    assert!(matches!(
        es10.remove_notification(seq),
        Err(Es10Error::Refused { code: 1, .. })
    ));
    assert!(es10.retrieve_notifications(Some(seq)).unwrap().is_empty());

    // Memory reset of operational profiles removes it.
    es10.memory_reset(MemoryResetOptions {
        operational_profiles: true,
        test_profiles: false,
        default_smdp_address: true,
    })
    .unwrap();
    assert!(es10.get_profiles_info(None).unwrap().is_empty());
    assert_eq!(
        es10.configured_addresses().unwrap().default_dp_address,
        None
    );
    assert!(matches!(
        es10.memory_reset(MemoryResetOptions {
            operational_profiles: true,
            ..MemoryResetOptions::default()
        }),
        Err(Es10Error::Refused {
            function: "EuiccMemoryReset",
            code: 1
        })
    ));
    let _card = es10.close().unwrap();
}
