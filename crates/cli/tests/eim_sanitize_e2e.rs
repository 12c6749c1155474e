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

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_crypto::SoftwareKey;
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_eim::{Eim, EimConfig, EimId, Timestamp};
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::relay::SmdpRelay;
use ferrosim_server::sandbox::tls_identity;
use ferrosim_server::{RunningServer, ServerOptions, api, esipa};
use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

const EIM_ID: &str = "eim.sanitize.test";
const TOKEN: i64 = 0x2A;

fn ok(args: &[&str]) -> String {
    let out: Output = ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .output()
        .expect("running ferrosim");
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Lab {
    smdp: TestSmdp,
    eim_key: VerifyingKey,
    _server: RunningServer,
    eim_address: String,
    http: reqwest::Client,
    operator: String,
    reader: String,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl Lab {
    async fn start() -> Self {
        let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
        let key = SoftwareKey::generate().unwrap();
        let eim_key = key.verifying_key().unwrap();
        let eim = Eim::new(
            smdp.store.clone(),
            EimConfig {
                eim_id: EimId::new(EIM_ID).unwrap(),
                key: Arc::new(key),
                trust: smdp.pki.trust_store().unwrap(),
            },
        );
        let tokens = MemTokenStore::new();
        let (operator, token) = new_token("ops", Scope::Operator, &mut rand::rng(), Timestamp(1));
        tokens.insert(token);
        let (reader, token) = new_token("ro", Scope::ReadOnly, &mut rand::rng(), Timestamp(1));
        tokens.insert(token);
        let relay = SmdpRelay::new(Some(smdp.smdp.clone()), None);
        let routes = esipa::routes(eim.clone(), relay).merge(api::eim::routes(eim.clone(), tokens));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let eim_address = format!("localhost:{}", listener.local_addr().unwrap().port());
        let server = ferrosim_server::start_with(
            listener,
            smdp.smdp.clone(),
            ServerOptions::new(tls_identity(&smdp.pki)),
            routes,
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ci.pem");
        std::fs::write(&ca, smdp.ci_pem()).unwrap();
        let http = smdp.https_client();
        Self {
            smdp,
            eim_key,
            _server: server,
            eim_address,
            http,
            operator,
            reader,
            dir,
            ca,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("https://{}{path}", self.eim_address);
        let mut request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(method, path, Some(&self.operator), body.as_deref())
            .await
    }

    async fn queue(&self, eid: &str, operation: Value) -> (u16, Value) {
        self.rest(
            "POST",
            &format!("/api/v1/eim/devices/{eid}/queue"),
            Some(operation),
        )
        .await
    }

    async fn associate(&self, eid: &str) -> (u16, Value) {
        let issued = &self.smdp.pki.euiccs[0];
        self.rest(
            "POST",
            "/api/v1/eim/devices",
            Some(json!({
                "eid": eid,
                "eumCertificate": self.smdp.pki.eum.certificate_pem(),
                "euiccCertificate": STANDARD.encode(issued.certificate.der()),
                "counter": 0,
                "associationToken": TOKEN,
            })),
        )
        .await
    }

    async fn order_state(&self, iccid: &str) -> OrderState {
        self.smdp
            .store
            .profile(&ferrosim_saip::Iccid::new(iccid).unwrap())
            .await
            .unwrap()
            .unwrap()
            .state
    }

    /// The AddInitialEimRequest for this eIM (what `ferrosim eim bootstrap` writes).
    fn add_initial_eim(&self) -> PathBuf {
        let point = self.eim_key.to_uncompressed().unwrap();
        let mut spki = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
        spki.extend_from_slice(&point);
        let config = sgp32::EimConfigurationData::new(
            EIM_ID.into(),
            Some(self.eim_address.clone()),
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
        let file = self.dir.path().join("first-eim.der");
        std::fs::write(
            &file,
            encode_der(&sgp32::AddInitialEimRequest::new(vec![config])).unwrap(),
        )
        .unwrap();
        file
    }
}

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
async fn garbage_is_refused(lab: &Lab, eid: &str) {
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
    let lab = Lab::start().await;
    let first_eim = lab.add_initial_eim();
    let eid = lab.smdp.pki.euiccs[0].certificate.eid().unwrap().digits();
    let euicc_state = lab.dir.path().join("euicc.json");
    let ipa_state = lab.dir.path().join("ipa.json");
    let identity = path(&lab.smdp.pki_dir);
    ok(&[
        "euicc",
        "init",
        "--identity",
        identity,
        "--eid",
        &eid,
        "--state",
        path(&euicc_state),
    ]);
    let device = [
        "--euicc-state",
        path(&euicc_state),
        "--identity",
        identity,
        "--eid",
        &eid,
    ];
    let add_eim = || {
        let mut add: Vec<&str> = vec!["ipa"];
        add.extend(device);
        add.extend(["add-initial-eim", "--file", path(&first_eim)]);
        assert!(ok(&add).contains("initial eIM added"));
    };
    let poll = || -> Value {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend([
            "poll",
            "--eim",
            &lab.eim_address,
            "--binding",
            "asn1",
            "--ca",
            path(&lab.ca),
            "--state",
            path(&ipa_state),
            "--download",
            "direct",
        ]);
        let session: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(session["error"], Value::Null, "{session}");
        session
    };
    add_eim();
    let (status, body) = lab.associate(&eid).await;
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
    let (status, body) = lab.associate(&eid).await;
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
    let (status, body) = lab.associate(&eid).await;
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
