//! The audit trail of a running SM-DP+ over loopback HTTPS: an operator
//! orders over ES2+, a device downloads and enables the profile, a caller
//! with a wrong token is refused; the log then holds each privileged call
//! and order step with who made it, chains intact, and no token in it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_audit::AuditLog;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_testkit::{OPERATOR, TestSmdp, TestSmdpOptions};

mod common;

#[tokio::test]
async fn privileged_calls_and_order_steps_are_recorded() {
    let mut smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 1,
        profiles: 2,
        audit: true,
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let (iccid, mid) = smdp.order(Some(&eid), None).await.unwrap();
    assert!(common::activate(&smdp, &es9, 0, &mid, true).await.is_some());

    // A wrong token: refused, and recorded with the caller's address.
    let resp = smdp
        .https_client()
        .post(format!(
            "{}/gsma/rsp2/es2plus/downloadOrder",
            smdp.base_url()
        ))
        .bearer_auth("not-a-token")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    smdp.stop().await; // flushes the auditor
    let log: &dyn AuditLog = &smdp.store;
    let entries = log.entries(0, 1000).await.unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} in {entries:#?}"))
    };
    let order = find("es2.downloadOrder");
    assert_eq!(order.actor, format!("operator:{OPERATOR}"));
    assert_eq!(order.subject, iccid);
    assert!(
        order.details.contains("Executed-Success"),
        "{}",
        order.details
    );
    assert_eq!(find("es2.confirmOrder").subject, iccid);
    for step in [
        "es9.authenticateClient",
        "es9.getBoundProfilePackage",
        "es9.handleNotification",
    ] {
        let e = find(step);
        assert_eq!(e.actor, "client:127.0.0.1", "{step}");
    }
    assert!(!find("es9.authenticateClient").subject.is_empty());
    let refused = find("es2.auth-refused");
    assert_eq!(
        (refused.actor.as_str(), refused.subject.as_str()),
        ("client:127.0.0.1", "downloadOrder")
    );
    // Nothing secret: neither the operator's token nor the one tried.
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains(&smdp.token) && !all.contains("not-a-token"));
    let report = log.verify(vec![], None).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
