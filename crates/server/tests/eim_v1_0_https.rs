//! A v1.0 peer over loopback HTTPS (ASN.1 binding): a device whose eUICC
//! and IPA speak SGP.32 v1.0 is associated through the REST API
//! (`euiccVersion: v1.0`); its v1.0 GetEimPackageRequest (rPLMN in `[1]`)
//! gets its package with `X-Admin-Protocol: gsma/rsp/v1.0.0`; its v1.0
//! result (signed over data || eimSignature, BF50 without the EID) is
//! verified, stored as read as v1.0 and acknowledged in the v1.0 shape; the
//! device view shows the IPA's version. The eIM's log lines for both
//! messages say `read_as=v1.0`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../../eim/tests/common/mod.rs"]
mod common;
mod eim_server;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_eim::Timestamp;
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::esipa;
use serde_json::{Value, json};

use common::{Device, package_of};
use eim_server::EimServer;

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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_0_ipa_over_https_is_answered_in_v1_0_and_logged_as_read_as_v1_0() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let tokens = MemTokenStore::new();
    let (operator, token) = new_token("ops", Scope::Operator, &mut rand::rng(), Timestamp(1));
    tokens.insert(token);
    let eim = EimServer::start(1, common::EIM_ID, tokens, axum::Router::new()).await;
    let (pki, http, base) = (&eim.pki, &eim.http, &eim.base);
    let rest = async |method: &str, path: &str, body: Option<Value>| -> (u16, Value) {
        eim.rest(method, path, Some(&operator), body).await
    };
    // One ESipa message over the ASN.1 binding, as a v1.0 IPA sends it:
    // the answer's bytes and its X-Admin-Protocol.
    let asn1 = async |der: Vec<u8>| -> (Vec<u8>, String) {
        let response = http
            .post(format!("{base}/gsma/rsp2/asn1"))
            .header("Content-Type", esipa::ASN1_CONTENT_TYPE)
            .header("X-Admin-Protocol", "gsma/rsp/v1.0.0")
            .body(der)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let protocol = response.headers()["X-Admin-Protocol"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.bytes().await.unwrap().to_vec(), protocol)
    };

    // A v1.0 device, associated with a disable queued.
    let issued = &pki.euiccs[0];
    let eid = issued.certificate.eid().unwrap();
    let mut association = eim.association(0);
    association["euiccVersion"] = json!("v1.0");
    let (status, body) = rest("POST", "/api/v1/eim/devices", Some(association)).await;
    assert_eq!(status, 201, "{body}");
    let mut device = Device {
        eid,
        key: issued.signing_key().unwrap(),
        euicc_version: Sgp32Version::V1_0,
        ipa_version: Sgp32Version::V1_0,
        token: Some(0x42),
        last_counter: 10,
        seq: 0,
        eim_key: eim.eim_key.clone(),
    };
    let iccid = common::iccid(2);
    let (status, body) = rest(
        "POST",
        &format!("/api/v1/eim/devices/{}/queue", eid.digits()),
        Some(json!({"operation": "disable", "iccid": iccid.as_str()})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // GetEimPackage in v1.0: the package, answered as v1.0.
    let (answer, protocol) = asn1(device.get_eim_package()).await;
    assert_eq!(protocol, "gsma/rsp/v1.0.0");
    let ran = device.run(&package_of(&answer));
    // ProvideEimPackageResult in v1.0 (no EID): verified, acknowledged in
    // the v1.0 shape.
    let (answer, protocol) = asn1(device.provide(&ran.result)).await;
    assert_eq!(protocol, "gsma/rsp/v1.0.0");
    assert_eq!(
        hex::encode(&answer),
        "bf5006bf5303800101",
        "a v1.0 ProvideEimPackageResultResponse acknowledging sequence number 1"
    );
    // Nothing more: the v1.0 noEimPackageAvailable.
    let (answer, protocol) = asn1(device.get_eim_package()).await;
    assert_eq!(protocol, "gsma/rsp/v1.0.0");
    assert_eq!(hex::encode(&answer), "bf4f03020101");

    let (_, results) = rest(
        "GET",
        &format!("/api/v1/eim/devices/{}/results", eid.digits()),
        None,
    )
    .await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["readAs"], "v1.0", "{results:?}");
    assert_eq!(results[0]["trust"], "verified", "{results:?}");
    assert_eq!(
        results[0]["outcome"],
        json!({"outcome": "executed", "codes": [0]})
    );
    let (_, view) = rest(
        "GET",
        &format!("/api/v1/eim/devices/{}", eid.digits()),
        None,
    )
    .await;
    assert_eq!(view["ipaVersion"], "v1.0", "{view}");
    assert_eq!(view["euiccVersion"], "v1.0", "{view}");

    // The log says which version each message was read as.
    let log = captured.text();
    let line = |message: &str| {
        log.lines()
            .filter(|l| l.contains(message) && l.contains("read_as"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let polls = line("GetEimPackage");
    assert!(!polls.is_empty(), "no GetEimPackage line in:\n{log}");
    assert!(
        polls.iter().all(|l| l.contains("read_as=v1.0")),
        "{polls:?}"
    );
    let provided = line("ProvideEimPackageResult");
    assert_eq!(provided.len(), 1, "{log}");
    assert!(provided[0].contains("read_as=v1.0"), "{provided:?}");
}
