//! Nothing secret reaches the logs or the audit trail: with every ferrosim
//! log at TRACE (dependencies at DEBUG), an operator orders over ES2+, a
//! device downloads, enables and notifies, a caller tries a wrong token;
//! then the captured log lines and the audit export are scanned for the
//! profile's K and OPc (hex, either case) and for both tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};

use ferrosim_audit::AuditLog;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_saip::Iccid;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

mod common;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_key_or_token_in_logs_or_audit_trail() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,ferrosim_server=trace,ferrosim_smdp=trace,ferrosim_store=trace,ferrosim_lpa=trace,ferrosim_euicc=trace,ferrosim_saip=trace",
        ))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

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
    let wrong = "fsk_wrongwrongwrongwrongwrongwrongwrongwrong1";
    let resp = smdp
        .https_client()
        .post(format!("{}/gsma/rsp2/es2plus/cancelOrder", smdp.base_url()))
        .bearer_auth(wrong)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let p = smdp
        .store
        .personalisation(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut secrets = vec![smdp.token.clone(), wrong.to_owned()];
    for key in [p.k.as_ref(), p.opc.as_ref()].into_iter().flatten() {
        let hex = hex::encode(key.as_bytes());
        secrets.push(hex.clone());
        secrets.push(hex.to_uppercase());
    }
    assert!(secrets.len() >= 4, "the sandbox's profiles have K and OPc");

    smdp.stop().await;
    let log: &dyn AuditLog = &smdp.store;
    let audit = serde_json::to_string(&log.entries(0, 10_000).await.unwrap()).unwrap();
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("ES2+ authentication failed"),
        "logs were captured"
    );
    assert!(logs.lines().count() > 20, "{logs}");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret in the logs");
        assert!(!audit.contains(s.as_str()), "a secret in the audit trail");
    }
}
