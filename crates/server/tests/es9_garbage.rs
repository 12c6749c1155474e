//! ES9+ fed garbage over real HTTPS: every answer is a `Failed` header with
//! a status code (HTTP 200), never a 500, and nothing stored changes.

use base64::Engine;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use proptest::prelude::*;
use serde_json::{Value, json};

const FUNCTIONS: [&str; 5] = [
    "initiateAuthentication",
    "authenticateClient",
    "getBoundProfilePackage",
    "handleNotification",
    "cancelSession",
];

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn failed(text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let s = &v["header"]["functionExecutionStatus"];
    assert_eq!(s["status"], "Failed", "{text}");
    (
        s["statusCodeData"]["subjectCode"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        s["statusCodeData"]["reasonCode"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

#[tokio::test]
async fn malformed_bodies_fail_cleanly() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let tid = "0123456789ABCDEF0123456789ABCDEF";
    let garbage_der = b64(&[0xBF, 0x38, 0x05, 0x01, 0x02]);
    for f in FUNCTIONS {
        for body in [
            "".to_owned(),
            "{".to_owned(),
            "[]".to_owned(),
            "{\"transactionId\": 12}".to_owned(),
            json!({"transactionId": "zz", "authenticateServerResponse": garbage_der, "prepareDownloadResponse": garbage_der, "cancelSessionResponse": garbage_der}).to_string(),
            json!({"transactionId": tid, "authenticateServerResponse": "%%%", "prepareDownloadResponse": "%%%", "cancelSessionResponse": "%%%", "pendingNotification": "%%%", "euiccChallenge": "%%%", "euiccInfo1": "%%%", "smdpAddress": smdp.address}).to_string(),
            json!({"transactionId": tid, "authenticateServerResponse": garbage_der, "prepareDownloadResponse": garbage_der, "cancelSessionResponse": garbage_der, "pendingNotification": garbage_der, "euiccChallenge": b64(&[0; 16]), "euiccInfo1": garbage_der, "smdpAddress": smdp.address}).to_string(),
        ] {
            let (code, text) = smdp.es9_raw(f, body.clone()).await.unwrap();
            assert_eq!(code, 200, "{f}: {body} -> {text}");
            let (subject, reason) = failed(&text);
            assert!(!subject.is_empty() && !reason.is_empty(), "{f}: {text}");
            // Messages name ASN.1 types, never this program's Rust paths.
            for leak in ["ferrosim_", "::", "Tag {"] {
                assert!(!text.contains(leak), "{f}: `{leak}` in {text}");
            }
        }
    }
    let counts = ferrosim_smdp::store::ProfileStore::count_profiles(smdp.smdp.store(), None)
        .await
        .unwrap();
    assert!(
        counts
            .iter()
            .all(|(s, _)| *s == ferrosim_smdp::order::ProfileState::Available)
    );
}

#[tokio::test]
async fn initiate_authentication_checks() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    use ferrosim_asn1::rasn::types::{FixedOctetString, OctetString};
    use ferrosim_asn1::{encode_der, pkix, rsp};
    let ci = smdp
        .pki
        .ci
        .certificate
        .subject_key_id()
        .unwrap()
        .as_bytes()
        .to_vec();
    let info1 = |svn: [u8; 3], ids: Vec<Vec<u8>>| {
        let ski: Vec<pkix::SubjectKeyIdentifier> = ids
            .into_iter()
            .map(|k| pkix::SubjectKeyIdentifier(pkix::KeyIdentifier(OctetString::from(k))))
            .collect();
        b64(&encode_der(&rsp::EUICCInfo1::new(
            rsp::VersionType(FixedOctetString::new(svn)),
            ski.clone(),
            ski,
        ))
        .unwrap())
    };
    let req = |addr: &str, info: String| {
        json!({"euiccChallenge": b64(&[7; 16]), "euiccInfo1": info, "smdpAddress": addr})
            .to_string()
    };
    // Happy path.
    let (_, text) = smdp
        .es9_raw(
            "initiateAuthentication",
            req(
                &smdp.address.to_uppercase(),
                info1([2, 2, 0], vec![ci.clone()]),
            ),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["header"]["functionExecutionStatus"]["status"], "Executed-Success",
        "{text}"
    );
    assert_eq!(v["transactionId"].as_str().unwrap().len(), 32);
    // Wrong address, unknown CI, unsupported version, short challenge.
    let (_, text) = smdp
        .es9_raw(
            "initiateAuthentication",
            req("other.example:443", info1([2, 2, 0], vec![ci.clone()])),
        )
        .await
        .unwrap();
    assert_eq!(failed(&text), ("8.8.1".into(), "3.8".into()));
    let (_, text) = smdp
        .es9_raw(
            "initiateAuthentication",
            req(&smdp.address, info1([2, 2, 0], vec![vec![1; 20]])),
        )
        .await
        .unwrap();
    assert_eq!(failed(&text), ("8.8.2".into(), "3.1".into()));
    let (_, text) = smdp
        .es9_raw(
            "initiateAuthentication",
            req(&smdp.address, info1([9, 0, 0], vec![ci.clone()])),
        )
        .await
        .unwrap();
    assert_eq!(failed(&text), ("8.8.3".into(), "3.1".into()));
    let body = json!({"euiccChallenge": b64(&[7; 3]), "euiccInfo1": info1([2, 2, 0], vec![ci]), "smdpAddress": smdp.address}).to_string();
    let (_, text) = smdp.es9_raw("initiateAuthentication", body).await.unwrap();
    assert_eq!(failed(&text), ("1.2".into(), "2.1".into()));
    // Unknown transaction id.
    let body = json!({"transactionId": "00112233", "authenticateServerResponse": b64(&[0xBF, 0x38, 0x00])}).to_string();
    let (_, text) = smdp.es9_raw("authenticateClient", body).await.unwrap();
    assert_eq!(failed(&text).0.as_str(), "1.2");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn random_der_in_every_field_never_crashes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let smdp = TestSmdp::start(TestSmdpOptions { profiles: 1, ..Default::default() }).await.unwrap();
            let d = b64(&bytes);
            for f in FUNCTIONS {
                let body = json!({"transactionId": "0011", "authenticateServerResponse": d, "prepareDownloadResponse": d,
                    "cancelSessionResponse": d, "pendingNotification": d, "euiccChallenge": d, "euiccInfo1": d,
                    "smdpAddress": smdp.address}).to_string();
                let (code, text) = smdp.es9_raw(f, body).await.unwrap();
                prop_assert_eq!(code, 200);
                failed(&text);
                prop_assert!(!text.contains("ferrosim_") && !text.contains("::"), "{}", text);
            }
            Ok(())
        })?;
    }
}

/// A decodable installation result the SM-DP+ cannot use (its session is
/// unknown, or it names another SM-DP+) gets the function's only answer,
/// HTTP 204 with no body (SGP.22 ES9+.HandleNotification): the SM-DP+ drops
/// it, and the LPA removes it instead of sending it again forever.
#[tokio::test]
async fn an_unusable_notification_is_acknowledged_with_204() {
    use ferrosim_asn1::rasn::types::{
        BitString, FixedOctetString, Integer, ObjectIdentifier, OctetString,
    };
    use ferrosim_asn1::{encode_der, rsp};
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let ours: Vec<u32> = smdp
        .smdp
        .config()
        .oid()
        .to_string()
        .split('.')
        .map(|a| a.parse().unwrap())
        .collect();
    for (tid, oid) in [
        (vec![0x42; 16], ours.clone()),
        (vec![0x01], ours.clone()),
        (vec![0x42; 16], vec![2, 999, 77]),
    ] {
        let mut install = BitString::new();
        install.push(true);
        let pir = rsp::ProfileInstallationResult::new(
            rsp::ProfileInstallationResultData::new(
                rsp::TransactionId(OctetString::from(tid.clone())),
                rsp::NotificationMetadata::new(
                    Integer::from(3),
                    rsp::NotificationEvent(install),
                    smdp.address.clone(),
                    Some(rsp::Iccid(FixedOctetString::new([
                        0x98, 0x44, 0, 0, 0, 0, 0, 0, 0, 0x10,
                    ]))),
                ),
                ObjectIdentifier::new(oid.clone()).unwrap(),
                rsp::ProfileInstallationResultDataFinalResult::successResult(
                    rsp::SuccessResult::new(
                        OctetString::from(vec![0xA0; 16]),
                        OctetString::from(vec![0]),
                    ),
                ),
            ),
            rsp::EuiccSignPIR(OctetString::from(vec![0x55; 64])),
        );
        let der = encode_der(&rsp::PendingNotification::profileInstallationResult(pir)).unwrap();
        let body = json!({"pendingNotification": b64(&der)}).to_string();
        let (code, text) = smdp.es9_raw("handleNotification", body).await.unwrap();
        assert_eq!(code, 204, "tid {tid:02X?}, oid {oid:?}: {text}");
        assert!(text.is_empty(), "{text}");
    }
}
