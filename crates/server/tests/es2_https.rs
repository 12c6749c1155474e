//! ES2+ over real HTTPS: the order life cycle, operator authentication,
//! idempotency by functionCallIdentifier, and garbage input.

use ferrosim_testkit::{PROFILE_TYPE, TestSmdp, TestSmdpOptions, header};
use serde_json::{Value, json};

fn status(v: &Value) -> (&str, &str, &str) {
    let s = &v["header"]["functionExecutionStatus"];
    (
        s["status"].as_str().unwrap_or(""),
        s["statusCodeData"]["subjectCode"].as_str().unwrap_or(""),
        s["statusCodeData"]["reasonCode"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn order_life_cycle_and_errors() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();

    // downloadOrder by profile type.
    let (code, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "profileType": PROFILE_TYPE}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    let iccid = r["iccid"].as_str().unwrap().to_owned();

    // Unknown type, unknown ICCID, missing both, bad EID.
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "profileType": "nope"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.5", "3.9"));
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "iccid": "8944000000000000999"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r).0, "Failed");
    let (_, r) = smdp
        .es2("downloadOrder", &json!({"header": header()}))
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "1.2", "2.2"));
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "profileType": PROFILE_TYPE, "eid": "123"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.1.1", "2.1"));

    // The same ICCID cannot be ordered twice.
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "iccid": iccid}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.1", "3.7"));

    // confirmOrder without release, then releaseProfile.
    let (_, r) = smdp
        .es2(
            "confirmOrder",
            &json!({"header": header(), "iccid": iccid, "releaseFlag": false, "confirmationCode": "1234"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    let mid = r["matchingId"].as_str().unwrap();
    assert_eq!(mid.len(), 23);
    assert_eq!(r["smdpAddress"], smdp.address.as_str());
    let p = smdp.smdp.store();
    let rec = ferrosim_smdp::store::ProfileStore::profile(p, &iccid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, ferrosim_smdp::order::ProfileState::Confirmed);

    let (_, r) = smdp
        .es2(
            "releaseProfile",
            &json!({"header": header(), "iccid": iccid}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    // Releasing twice is a state error.
    let (_, r) = smdp
        .es2(
            "releaseProfile",
            &json!({"header": header(), "iccid": iccid}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.1", "3.7"));

    // cancelOrder with a wrong matching id is refused; then back to Available.
    let (_, r) = smdp
        .es2(
            "cancelOrder",
            &json!({"header": header(), "iccid": iccid, "matchingId": "WRONG-ID", "finalProfileStatusIndicator": "Available"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.6", "3.8"));
    let (_, r) = smdp
        .es2(
            "cancelOrder",
            &json!({"header": header(), "iccid": iccid, "finalProfileStatusIndicator": "Maybe"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "1.2", "2.1"));
    let (_, r) = smdp
        .es2(
            "cancelOrder",
            &json!({"header": header(), "iccid": iccid, "finalProfileStatusIndicator": "Available"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r).0, "Executed-Success", "{r}");
    let rec = ferrosim_smdp::store::ProfileStore::profile(p, &iccid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, ferrosim_smdp::order::ProfileState::Available);
    assert!(rec.order.is_none());
}

#[tokio::test]
async fn matching_ids_are_unique_and_profiles_run_out() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        profiles: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let (a, _) = smdp.order(None, None).await.unwrap();
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "profileType": PROFILE_TYPE}),
        )
        .await
        .unwrap();
    let b = r["iccid"].as_str().unwrap().to_owned();
    let mid_a = ferrosim_smdp::store::ProfileStore::profile(smdp.smdp.store(), &a.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .matching_id()
        .unwrap()
        .to_string();
    let (_, r) = smdp
        .es2(
            "confirmOrder",
            &json!({"header": header(), "iccid": b, "matchingId": mid_a, "releaseFlag": true}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.6", "3.3"));
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": header(), "profileType": PROFILE_TYPE}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "8.2.5", "3.7"));
}

#[tokio::test]
async fn function_call_identifier_makes_calls_idempotent() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let h = header();
    let body = json!({"header": h, "profileType": PROFILE_TYPE});
    let (_, first) = smdp.es2("downloadOrder", &body).await.unwrap();
    let (_, again) = smdp.es2("downloadOrder", &body).await.unwrap();
    assert_eq!(first, again, "a repeated call returns the first answer");
    let counts = ferrosim_smdp::store::ProfileStore::count_profiles(smdp.smdp.store(), None)
        .await
        .unwrap();
    let allocated: u64 = counts
        .iter()
        .filter(|(s, _)| *s == ferrosim_smdp::order::ProfileState::Allocated)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(allocated, 1, "only one profile was allocated");
    // Same id, different request: refused.
    let (_, r) = smdp
        .es2(
            "downloadOrder",
            &json!({"header": h, "profileType": "other"}),
        )
        .await
        .unwrap();
    assert_eq!(status(&r), ("Failed", "1.1.2", "3.3"));
}

#[tokio::test]
async fn operators_must_authenticate_and_only_see_their_own() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let client = smdp.https_client();
    let url = format!("{}/gsma/rsp2/es2plus/downloadOrder", smdp.base_url());
    let body = json!({"header": header(), "profileType": PROFILE_TYPE});
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth("fst_wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), ("Failed", "1.1.1", "1.2"));

    // A second operator cannot touch the first one's profiles.
    let other = ferrosim_smdp::inventory::add_operator(
        smdp.smdp.store(),
        ferrosim_smdp::ids::OperatorId::new("other-op").unwrap(),
        "Other".into(),
        None,
        &mut rand::rng(),
    )
    .await
    .unwrap();
    let (iccid, _) = smdp.order(None, None).await.unwrap();
    let r = client
        .post(format!("{}/gsma/rsp2/es2plus/cancelOrder", smdp.base_url()))
        .bearer_auth(&other)
        .json(&json!({
            "header": {"functionRequesterIdentifier": "other-op", "functionCallIdentifier": "x1"},
            "iccid": iccid, "finalProfileStatusIndicator": "Unavailable"
        }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), ("Failed", "8.2.1", "3.9"));
    // Nor pretend to be the first operator.
    let r = client
        .post(format!("{}/gsma/rsp2/es2plus/cancelOrder", smdp.base_url()))
        .bearer_auth(&other)
        .json(&json!({
            "header": {"functionRequesterIdentifier": ferrosim_testkit::OPERATOR, "functionCallIdentifier": "x2"},
            "iccid": iccid, "finalProfileStatusIndicator": "Unavailable"
        }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), ("Failed", "1.1.1", "1.2"));
}

#[tokio::test]
async fn garbage_is_a_failed_answer_never_a_crash() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let client = smdp.https_client();
    let bodies: [&[u8]; 6] = [
        b"",
        b"not json",
        b"{\"header\": 5}",
        b"{\"header\":{\"functionRequesterIdentifier\":\"test-operator\",\"functionCallIdentifier\":\"g1\"},\"iccid\":[1,2]}",
        b"\xff\xfe\x00garbage",
        b"{\"header\":{\"functionRequesterIdentifier\":\"test-operator\",\"functionCallIdentifier\":\"g2\"},\"iccid\":\"12345\",\"releaseFlag\":true}",
    ];
    for f in [
        "downloadOrder",
        "confirmOrder",
        "cancelOrder",
        "releaseProfile",
    ] {
        for body in bodies {
            let r = client
                .post(format!("{}/gsma/rsp2/es2plus/{f}", smdp.base_url()))
                .bearer_auth(&smdp.token)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{f} {body:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(status(&v).0, "Failed", "{f} {body:?}: {v}");
        }
    }
    let r = client
        .post(format!("{}/gsma/rsp2/es2plus/doSomething", smdp.base_url()))
        .bearer_auth(&smdp.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// The typed operator client: a whole order life cycle, and each failure
/// returned as `Failed` with the SM-DP+'s subject and reason codes.
#[tokio::test]
async fn typed_es2_client_orders_and_reports_status_codes() {
    use ferrosim_asn1::json::es2::{
        CancelOrderRequest, DownloadOrderRequest, ReleaseProfileRequest,
    };
    use ferrosim_server::es2_client::{Es2Client, Es2ClientError};

    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let client = smdp.operator();

    // downloadOrder + confirmOrder with release in one step.
    let (iccid, matching_id) = client
        .order_released(PROFILE_TYPE, None, None)
        .await
        .unwrap();
    assert_eq!(iccid.len(), 19);
    assert!(!matching_id.is_empty());

    // Reserve another, release it separately, then cancel it.
    let ordered = client
        .download_order(&DownloadOrderRequest {
            header: client.header(),
            eid: None,
            iccid: None,
            profile_type: Some(PROFILE_TYPE.into()),
        })
        .await
        .unwrap();
    let released = client
        .release_profile(&ReleaseProfileRequest {
            header: client.header(),
            iccid: ordered.iccid.clone(),
        })
        .await;
    // releaseProfile needs a confirmed order: the SM-DP+ refuses it by code.
    match released {
        Err(Es2ClientError::Failed { subject_code, .. }) => assert_eq!(subject_code, "8.2.1"),
        other => panic!("releaseProfile of an unconfirmed order: {other:?}"),
    }
    client
        .cancel_order(&CancelOrderRequest {
            header: client.header(),
            iccid: ordered.iccid.clone(),
            eid: None,
            matching_id: None,
            final_profile_status_indicator: "Available".into(),
        })
        .await
        .unwrap();

    // An unknown profile type: Failed 8.2.5 / 3.9, typed.
    match client.order_released("no-such-type", None, None).await {
        Err(Es2ClientError::Failed {
            function,
            subject_code,
            reason_code,
            ..
        }) => {
            assert_eq!(function, "downloadOrder");
            assert_eq!(
                (subject_code.as_str(), reason_code.as_str()),
                ("8.2.5", "3.9")
            );
        }
        other => panic!("unknown profile type: {other:?}"),
    }

    // A wrong token is refused, never a success.
    let stranger = Es2Client::with_http(
        &smdp.base_url(),
        ferrosim_testkit::OPERATOR,
        "not-the-token",
        smdp.https_client(),
    );
    assert!(
        stranger
            .order_released(PROFILE_TYPE, None, None)
            .await
            .is_err()
    );

    // Nothing listens on this port: an HTTP error, not a panic.
    let nowhere = Es2Client::with_http(
        "https://127.0.0.1:9",
        ferrosim_testkit::OPERATOR,
        &smdp.token,
        smdp.https_client(),
    );
    assert!(matches!(
        nowhere.order_released(PROFILE_TYPE, None, None).await,
        Err(Es2ClientError::Http { .. })
    ));

    // A trust anchor that is not PEM cannot build a client.
    assert!(matches!(
        Es2Client::new(&smdp.base_url(), "op", "t", b"garbage"),
        Err(Es2ClientError::Setup(_))
    ));
}

/// Several ES2+ tokens per operator over HTTPS: a named token added beside
/// the operator's default one works at once; after the default is revoked
/// the named one goes on working (rotation without downtime) and the
/// revoked one gets 401.
#[tokio::test]
async fn every_active_token_of_an_operator_is_accepted() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let client = smdp.https_client();
    let url = format!("{}/gsma/rsp2/es2plus/downloadOrder", smdp.base_url());
    let op = ferrosim_smdp::ids::OperatorId::new(ferrosim_testkit::OPERATOR).unwrap();
    let second = ferrosim_smdp::inventory::new_operator_token(&mut rand::rng());
    smdp.store
        .add_operator_token(
            &op,
            "rotation-2026-12",
            &ferrosim_smdp::es2::token_hash(&second),
            ferrosim_smdp::time::Timestamp::now(),
        )
        .await
        .unwrap();
    let order_with = |token: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"header": header(), "profileType": PROFILE_TYPE});
            let r = client
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (
                code,
                v["header"]["functionExecutionStatus"]["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        }
    };
    let ok = (200, "Executed-Success".to_owned());
    assert_eq!(order_with(smdp.token.clone()).await, ok);
    assert_eq!(order_with(second.clone()).await, ok);
    assert!(
        smdp.store
            .revoke_operator_token(
                &op,
                ferrosim_store::DEFAULT_TOKEN,
                ferrosim_smdp::time::Timestamp::now()
            )
            .await
            .unwrap()
    );
    assert_eq!(order_with(smdp.token.clone()).await.0, 401);
    assert_eq!(order_with(second).await, ok);
}
