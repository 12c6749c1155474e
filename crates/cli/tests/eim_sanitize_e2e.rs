//! Sanitized reprovisioning end to end over loopback HTTPS: a virtual IoT
//! device driven by the real IPA (`ferrosim ipa poll`) holds two profiles
//! downloaded through eIM triggers (one enabled); the operator sanitizes it
//! through the eIM's REST API; at its next poll the eUICC runs the signed
//! wipe package (disable, deletes, closing listProfileInfo) and listEim; the
//! report, read from those signed results, says what was wiped and what was
//! kept; the release (deleteEim) leaves the eUICC without an eIM; the device
//! gets an eIM again, is associated afresh, and a fresh download installs.
//! Garbage to the new endpoints is refused with clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use ferrosim_smdp::order::ProfileState as OrderState;
use serde_json::{Value, json};

use common::eim_lab::EimLab;
use common::ok;

const EIM_ID: &str = "eim.sanitize.test";
const TOKEN: i64 = 0x2A;

/// method, path, token, body, expected status, expected text in the answer.
type Case<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    Option<&'a str>,
    u16,
    &'a str,
);

/// Every malformed or misplaced call to the sanitization endpoints gets a
/// clear 4xx, never a 500.
async fn garbage_is_refused(lab: &EimLab, eid: &str) {
    let sanitize = format!("/api/v1/eim/devices/{eid}/sanitize");
    let release = format!("/api/v1/eim/devices/{eid}/release");
    let op = Some(lab.operator.as_str());
    let unknown = ferrosim_eim::suite::test_eid(99).digits();
    let cases: Vec<Case<'_>> = vec![
        ("POST", sanitize.clone(), None, Some("{}"), 401, ""),
        ("GET", sanitize.clone(), None, None, 401, ""),
        ("POST", release.clone(), None, None, 401, ""),
        (
            "POST",
            sanitize.clone(),
            Some(lab.reader.as_str()),
            Some("{}"),
            403,
            "",
        ),
        (
            "POST",
            release.clone(),
            Some(lab.reader.as_str()),
            None,
            403,
            "",
        ),
        ("POST", sanitize.clone(), op, Some("{"), 400, ""),
        ("POST", sanitize.clone(), op, Some("[1,2]"), 400, ""),
        (
            "POST",
            sanitize.clone(),
            op,
            Some(r#"{"wipeEverything":true}"#),
            400,
            "wipeEverything",
        ),
        (
            "POST",
            sanitize.clone(),
            op,
            Some(r#"{"keepProvisioningProfiles":"yes"}"#),
            400,
            "",
        ),
        (
            "POST",
            "/api/v1/eim/devices/12345/sanitize".into(),
            op,
            Some("{}"),
            400,
            "not an EID",
        ),
        (
            "GET",
            "/api/v1/eim/devices/not-an-eid/sanitize".into(),
            op,
            None,
            400,
            "not an EID",
        ),
        (
            "POST",
            "/api/v1/eim/devices/%00%ff/release".into(),
            op,
            None,
            400,
            "",
        ),
        (
            "POST",
            format!("/api/v1/eim/devices/{unknown}/sanitize"),
            op,
            Some("{}"),
            404,
            "no association",
        ),
        (
            "GET",
            format!("/api/v1/eim/devices/{unknown}/sanitize"),
            op,
            None,
            404,
            "no association",
        ),
        ("GET", sanitize.clone(), op, None, 404, "no sanitization"),
        ("POST", release.clone(), op, None, 404, "no sanitization"),
    ];
    for (method, path, token, body, status, says) in cases {
        let (got, answer) = lab.call(method, &path, token, body).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {answer}");
        assert!(
            answer.to_string().contains(says),
            "{method} {path} {body:?}: expected `{says}` in {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_is_wiped_verified_released_and_provisioned_afresh() {
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let first_eim = lab.add_initial_eim();
    let card = lab.euicc_init(0, "euicc.json");
    let (eid, euicc_state) = (card.eid.clone(), card.euicc_state.clone());
    let ipa_state = lab.dir.path().join("ipa.json");
    let device = card.args();
    let add_eim = || {
        assert!(
            card.add_initial_eim(&first_eim)
                .contains("initial eIM added")
        );
    };
    let poll = || -> Value {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend(lab.poll_args("asn1", &ipa_state));
        args.extend(["--download", "direct"]);
        let session: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(session["error"], Value::Null, "{session}");
        session
    };
    add_eim();
    let (status, body) = lab.associate(0).await;
    assert_eq!(status, 201, "{body}");
    garbage_is_refused(&lab, &eid).await;

    // Two profiles installed through the eIM, the first enabled.
    let mut iccids = Vec::new();
    for _ in 0..2 {
        let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
        let code = format!("1${}${matching_id}", lab.smdp.address);
        let (status, body) = lab
            .queue(
                &eid,
                json!({"operation": "download", "activationCode": code}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        iccids.push(iccid);
    }
    let session = poll();
    for (n, iccid) in iccids.iter().enumerate() {
        assert_eq!(
            session["items"][n]["download"]["installed"],
            iccid.as_str(),
            "{session}"
        );
    }
    let (status, body) = lab
        .queue(&eid, json!({"operation": "enable", "iccid": iccids[0]}))
        .await;
    assert_eq!(status, 201, "{body}");
    poll();
    let (_, profiles) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/profiles"), None)
        .await;
    for iccid in &iccids {
        assert!(profiles.to_string().contains(iccid.as_str()), "{profiles}");
    }

    // Sanitize: the wipe package is built from what the eIM knows.
    let (status, report) = lab
        .rest(
            "POST",
            &format!("/api/v1/eim/devices/{eid}/sanitize"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["verdict"], "awaiting-results", "{report}");
    let ops: Vec<(String, Value)> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["operation"].as_str().unwrap().to_owned(),
                o["iccid"].clone(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("disable".to_owned(), json!(iccids[0])),
            ("delete".to_owned(), json!(iccids[0])),
            ("delete".to_owned(), json!(iccids[1])),
            ("list-profiles".to_owned(), Value::Null),
        ],
        "{report}"
    );
    let (status, body) = lab
        .rest("POST", &format!("/api/v1/eim/devices/{eid}/release"), None)
        .await;
    assert_eq!(status, 409, "not before the wipe is verified: {body}");

    // The device runs it at its next poll; the report reads the signed results.
    let session = poll();
    assert_eq!(
        session["items"].as_array().map(Vec::len),
        Some(2),
        "{session}"
    );
    let (status, report) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/sanitize"), None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "clean", "{report}");
    assert_eq!(
        report["wiped"]["profilesDeleted"],
        json!(iccids),
        "{report}"
    );
    assert_eq!(
        report["wiped"]["profilesDisabled"],
        json!([iccids[0]]),
        "{report}"
    );
    assert_eq!(report["kept"]["profiles"], json!([]), "{report}");
    assert_eq!(report["kept"]["otherEims"], json!([]), "{report}");
    assert_eq!(report["signatures"]["wipe"], "verified", "{report}");
    assert_eq!(report["signatures"]["eimList"], "verified", "{report}");
    assert_eq!(report["wiped"]["eimConfiguration"], Value::Null, "{report}");
    let state = std::fs::read_to_string(&euicc_state).unwrap();
    for iccid in &iccids {
        assert!(!state.contains(iccid.as_str()), "deleted from the eUICC");
    }

    // Release: the eUICC forgets this eIM.
    let (status, report) = lab
        .rest("POST", &format!("/api/v1/eim/devices/{eid}/release"), None)
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["verdict"], "release-ordered", "{report}");
    let (status, body) = lab.queue(&eid, json!({"operation": "list-profiles"})).await;
    assert_eq!(
        status, 409,
        "nothing more for a device being released: {body}"
    );
    let (status, body) = lab.associate(0).await;
    assert_eq!(
        status, 409,
        "not associated again before the release: {body}"
    );
    poll();
    let (_, report) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/sanitize"), None)
        .await;
    assert_eq!(report["verdict"], "released", "{report}");
    assert_eq!(
        report["wiped"]["eimConfiguration"], "deleted-last-eim",
        "{report}"
    );
    assert_eq!(report["signatures"]["release"], "verified", "{report}");
    let state = std::fs::read_to_string(&euicc_state).unwrap();
    assert!(!state.contains(EIM_ID), "the eUICC has no eIM: {state}");

    // Re-associated and provisioned afresh.
    add_eim();
    let (status, body) = lab.associate(0).await;
    assert_eq!(status, 201, "{body}");
    let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
    let code = format!("1${}${matching_id}", lab.smdp.address);
    let (status, body) = lab
        .queue(
            &eid,
            json!({"operation": "download", "activationCode": code}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let session = poll();
    assert_eq!(
        session["items"][0]["download"]["installed"],
        iccid.as_str(),
        "{session}"
    );
    assert_eq!(lab.order_state(&iccid).await, OrderState::Installed);
    let (_, report) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/sanitize"), None)
        .await;
    assert!(report["reassociatedAtMs"].is_i64(), "{report}");
}
