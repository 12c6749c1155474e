//! ES2+ `revokeProfile` (the ferrosim extension for a profile's end of life)
//! over real HTTPS: a profile downloaded to a virtual eUICC is revoked (its
//! order ended, its ICCID awaiting the device's delete, the device named in
//! the answer), a profile never on a device is retired or quarantined at
//! once; a second revocation, another operator's ICCID and garbage
//! arguments are refused with SGP.22 status codes and change nothing; a
//! repeated functionCallIdentifier replays the first answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::SystemTime;

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{Consent, DownloadRequest, download_profile};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{ActivationCode, Es10, Es10Options, SmdpAddress};
use ferrosim_saip::Iccid;
use ferrosim_smdp::end_of_life::EndOfLifeState;
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::{EndOfLifeStore, ProfileStore};
use ferrosim_testkit::{OPERATOR, TestSmdp, TestSmdpOptions, header};
use serde_json::{Value, json};

fn status(v: &Value) -> (&str, &str, &str) {
    let s = &v["header"]["functionExecutionStatus"];
    (
        s["status"].as_str().unwrap_or(""),
        s["statusCodeData"]["subjectCode"].as_str().unwrap_or(""),
        s["statusCodeData"]["reasonCode"].as_str().unwrap_or(""),
    )
}

async fn revoke(smdp: &TestSmdp, body: Value) -> Value {
    let (code, v) = smdp.es2("revokeProfile", &body).await.unwrap();
    assert_eq!(code, 200, "{v}");
    v
}

async fn profile_state(smdp: &TestSmdp, iccid: &str) -> ProfileState {
    smdp.store
        .profile(&Iccid::new(iccid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn an_installed_profile_is_revoked_and_its_device_named() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let (iccid, matching_id) = smdp.order(Some(&eid), None).await.unwrap();

    // The real download: LPA side over HTTPS into a virtual eUICC.
    let mut card = VirtualEuicc::new(
        EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap(),
        EuiccState::default(),
    );
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let ac =
        ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(&matching_id)).unwrap();
    {
        let mut es10 = Es10::open(
            |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
            &Es10Options::default(),
        )
        .unwrap();
        download_profile(&mut es10, &es9, &DownloadRequest::new(&ac, None), |_| {
            Consent::Accept
        })
        .await
        .unwrap();
    }
    assert_eq!(profile_state(&smdp, &iccid).await, ProfileState::Installed);

    let body = json!({"header": header(), "iccid": iccid, "reason": "device stolen",
                      "reusePolicy": "quarantine", "quarantineSeconds": 86400});
    let r = revoke(&smdp, body.clone()).await;
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    assert_eq!(r["iccid"], iccid.as_str());
    assert_eq!(r["endOfLifeState"], "awaiting-device-delete");
    assert_eq!(r["deleteOnDevice"], eid.as_str());
    assert_eq!(r["quarantineSeconds"], 86400);
    assert!(
        r.get("reusableFrom").is_none(),
        "not before the device's delete: {r}"
    );
    let stored = smdp
        .store
        .revocation(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, EndOfLifeState::AwaitingDeviceDelete);
    assert_eq!(stored.reason, "device stolen");
    assert_eq!(stored.eid.map(|e| e.to_string()), Some(eid.clone()));

    // The same call again: the first answer, replayed.
    let again = revoke(&smdp, body).await;
    assert_eq!(again, r);
    // A new call: revoked already (8.2.1 / 3.7), nothing changed.
    let r = revoke(&smdp, json!({"header": header(), "iccid": iccid})).await;
    assert_eq!(status(&r), ("Failed", "8.2.1", "3.7"), "{r}");
    let after = smdp
        .store
        .revocation(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, stored);
}

#[tokio::test]
async fn an_order_is_ended_and_garbage_is_refused() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, _) = smdp.order(None, None).await.unwrap();
    let long = "x".repeat(300);
    // Each refused with its status code; the order untouched.
    let refusals: Vec<(Value, (&str, &str, &str))> = vec![
        (
            json!({"header": header(), "iccid": "12ab"}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": "8944000000000099995"}),
            ("Failed", "8.2.1", "3.9"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "reusePolicy": "reuse"}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "reusePolicy": "quarantine", "quarantineSeconds": -1}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "reusePolicy": "quarantine", "quarantineSeconds": i64::MAX}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "reusePolicy": "retire", "quarantineSeconds": 5}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "quarantineSeconds": 5}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "reason": long}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "extra": 1}),
            ("Failed", "1.2", "2.1"),
        ),
        (
            json!({"header": header(), "iccid": iccid, "quarantineSeconds": "ten"}),
            ("Failed", "1.2", "2.1"),
        ),
        (json!({"header": header()}), ("Failed", "1.2", "2.2")),
    ];
    for (body, expected) in refusals {
        let r = revoke(&smdp, body.clone()).await;
        assert_eq!(status(&r), expected, "{body}: {r}");
    }
    for body in [&b""[..], b"not json", b"{\"header\": 5}", b"\xff\xfe\x00"] {
        let r = smdp
            .https_client()
            .post(format!(
                "{}/gsma/rsp2/es2plus/revokeProfile",
                smdp.base_url()
            ))
            .bearer_auth(&smdp.token)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{body:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(status(&v).0, "Failed", "{body:?}: {v}");
    }
    assert_eq!(profile_state(&smdp, &iccid).await, ProfileState::Released);
    assert!(
        smdp.store
            .revocation(&Iccid::new(&iccid).unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // Another operator may not revoke it (and learns nothing).
    let other = ferrosim_smdp::inventory::add_operator(
        &smdp.store,
        ferrosim_smdp::ids::OperatorId::new("other-op").unwrap(),
        "Other".into(),
        None,
        &mut rand::rng(),
    )
    .await
    .unwrap();
    let r = smdp
        .https_client()
        .post(format!(
            "{}/gsma/rsp2/es2plus/revokeProfile",
            smdp.base_url()
        ))
        .bearer_auth(&other)
        .json(&json!({
            "header": {"functionRequesterIdentifier": "other-op", "functionCallIdentifier": "o1"},
            "iccid": iccid
        }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), ("Failed", "8.2.1", "3.9"), "{v}");
    // Nor pretend to be the first operator.
    let r = smdp
        .https_client()
        .post(format!(
            "{}/gsma/rsp2/es2plus/revokeProfile",
            smdp.base_url()
        ))
        .bearer_auth(&other)
        .json(&json!({
            "header": {"functionRequesterIdentifier": OPERATOR, "functionCallIdentifier": "o2"},
            "iccid": iccid
        }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), ("Failed", "1.1.1", "1.2"), "{v}");

    // The operator's default policy (retire): ended and retired at once.
    let r = revoke(&smdp, json!({"header": header(), "iccid": iccid})).await;
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    assert_eq!(r["endOfLifeState"], "retired");
    assert_eq!(r["reusePolicy"], "retire");
    assert!(r.get("deleteOnDevice").is_none(), "{r}");
    assert_eq!(
        profile_state(&smdp, &iccid).await,
        ProfileState::Unavailable
    );

    // A quarantined one says when it is reusable.
    let (second, _) = smdp.order(None, None).await.unwrap();
    let r = revoke(
        &smdp,
        json!({"header": header(), "iccid": second, "reusePolicy": "quarantine", "quarantineSeconds": 60}),
    )
    .await;
    assert_eq!(r["endOfLifeState"], "quarantined", "{r}");
    assert!(r["reusableFrom"].as_str().unwrap().ends_with('Z'), "{r}");
}
