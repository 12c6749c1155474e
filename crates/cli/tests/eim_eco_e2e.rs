//! eIM Configuration Operations end to end over loopback HTTPS: a virtual
//! IoT device driven by the real IPA (`ferrosim ipa poll`) is associated
//! with the eIM of a running server; the operator queues (REST API) an eCO
//! addEim of a second eIM, updateEim of it, and deleteEim of it, each
//! followed by a listEim; after each poll the eIM holds the eUICC's
//! verified results with the codes SGP.32 gives, the signed listEim names
//! the eIMs the eUICC knows, and the eUICC's own state (its eIM list, FQDN,
//! counter, association token, key) shows the change. The refusals the
//! eUICC gives (an eIM that already exists, one it does not know) come back
//! as verified results too.

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
use ferrosim_euicc::EuiccState;
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::relay::SmdpRelay;
use ferrosim_server::sandbox::tls_identity;
use ferrosim_server::{RunningServer, ServerOptions, api, esipa};
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

const EIM_ID: &str = "eim.eco.test";
const SECOND_EIM: &str = "eim.second.test";
const TOKEN: i64 = 0x33;

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

/// The DER SubjectPublicKeyInfo of a P-256 key.
fn spki(key: &VerifyingKey) -> Vec<u8> {
    let mut der = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    der.extend_from_slice(&key.to_uncompressed().unwrap());
    der
}

struct Lab {
    smdp: TestSmdp,
    eim_key: VerifyingKey,
    _server: RunningServer,
    eim_address: String,
    http: reqwest::Client,
    operator: String,
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
        let relay = SmdpRelay::new(Some(smdp.smdp.clone()), None);
        let routes = esipa::routes(eim.clone(), relay).merge(api::eim::routes(eim, tokens));
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
            dir,
            ca,
        }
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("https://{}{path}", self.eim_address);
        let mut request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        }
        .bearer_auth(&self.operator);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Queues `operations` for `eid`, each answered `201`.
    async fn queue(&self, eid: &str, operations: &[Value]) {
        for operation in operations {
            let (status, body) = self
                .rest(
                    "POST",
                    &format!("/api/v1/eim/devices/{eid}/queue"),
                    Some(operation.clone()),
                )
                .await;
            assert_eq!(status, 201, "{operation}: {body}");
        }
    }

    /// Every result the eIM stored for `eid`.
    async fn results(&self, eid: &str) -> Vec<Value> {
        let (status, results) = self
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/results"), None)
            .await;
        assert_eq!(status, 200, "{results}");
        results.as_array().unwrap().clone()
    }

    /// The AddInitialEimRequest for this eIM (what `ferrosim eim bootstrap` writes).
    fn add_initial_eim(&self) -> PathBuf {
        let config = sgp32::EimConfigurationData::new(
            EIM_ID.into(),
            Some(self.eim_address.clone()),
            None,
            Some(Integer::from(0)),
            Some(Integer::from(TOKEN)),
            Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
                decode_der(&spki(&self.eim_key)).unwrap(),
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

/// The operations of a verified, signed package result (`der`: base64 of
/// the EuiccPackageResult the eIM stored).
fn signed_results(result: &Value) -> Vec<sgp32::EuiccResultData> {
    assert_eq!(result["trust"], "verified", "{result}");
    assert_eq!(result["outcome"]["outcome"], "executed", "{result}");
    // The eIM keeps the CHOICE inside `BF51`: wrap it again.
    let inner = STANDARD.decode(result["der"].as_str().unwrap()).unwrap();
    let mut der = vec![0xBF, 0x51];
    match inner.len() {
        n @ 0..=0x7F => der.push(u8::try_from(n).unwrap()),
        n @ 0x80..=0xFF => der.extend([0x81, u8::try_from(n).unwrap()]),
        n => der.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend_from_slice(&inner);
    match decode_der::<sgp32::EuiccPackageResult>(&der).unwrap() {
        sgp32::EuiccPackageResult::euiccPackageResultSigned(s) => {
            assert_eq!(s.euicc_package_result_data_signed.eim_id, EIM_ID);
            s.euicc_package_result_data_signed.euicc_result
        }
        other => panic!("not a signed package result: {other:?}"),
    }
}

/// The eIM ids a listEim result names.
fn listed_eims(result: &Value) -> Vec<String> {
    match &signed_results(result)[..] {
        [sgp32::EuiccResultData::listEimResult(sgp32::ListEimResult::eimIdList(list))] => {
            list.iter().map(|e| e.eim_id.clone()).collect()
        }
        other => panic!("not a listEim result: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn add_update_and_delete_eim_run_on_the_euicc_with_verified_results() {
    let lab = Lab::start().await;
    let first_eim = lab.add_initial_eim();
    let issued = &lab.smdp.pki.euiccs[0];
    let eid = issued.certificate.eid().unwrap().digits();
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
    let mut add: Vec<&str> = vec!["ipa"];
    add.extend(device);
    add.extend(["add-initial-eim", "--file", path(&first_eim)]);
    assert!(ok(&add).contains("initial eIM added"));
    let (status, body) = lab
        .rest(
            "POST",
            "/api/v1/eim/devices",
            Some(json!({
                "eid": eid,
                "eumCertificate": lab.smdp.pki.eum.certificate_pem(),
                "euiccCertificate": STANDARD.encode(issued.certificate.der()),
                "counter": 0,
                "associationToken": TOKEN,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Runs what is queued; the results it added at the eIM, in order.
    let mut seen = 0;
    let mut poll = async |expected: usize| -> Vec<Value> {
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
        ]);
        let session: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(session["error"], Value::Null, "{session}");
        assert_eq!(
            session["items"].as_array().unwrap().len(),
            expected,
            "{session}"
        );
        assert_eq!(session["pending"], 0, "{session}");
        let results = lab.results(&eid).await;
        assert_eq!(
            results.len(),
            seen + expected,
            "each result once: {results:?}"
        );
        let new = results[seen..].to_vec();
        seen = results.len();
        new
    };
    let eims_on_card = || EuiccState::load(&euicc_state).unwrap().eims;

    // addEim: a second eIM with its key, FQDN, counter and association token.
    let second_key = SoftwareKey::generate().unwrap().verifying_key().unwrap();
    let second_spki = STANDARD.encode(spki(&second_key));
    lab.queue(
        &eid,
        &[
            json!({"operation": "add-eim", "eim": {
                "eimId": SECOND_EIM,
                "eimFqdn": "second.example:8443",
                "counterValue": 5,
                "associationToken": 9,
                "eimPublicKey": second_spki,
            }}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(2).await;
    assert!(
        matches!(
            &signed_results(&results[0])[..],
            [sgp32::EuiccResultData::addEimResult(sgp32::AddEimResult::associationToken(t))]
                if *t == Integer::from(9)
        ),
        "addEim answers the association token: {:?}",
        results[0]
    );
    assert_eq!(listed_eims(&results[1]), [EIM_ID, SECOND_EIM]);
    let eims = eims_on_card();
    assert_eq!(eims.len(), 2, "{eims:?}");
    assert_eq!(eims[1].eim_id, SECOND_EIM);
    assert_eq!(eims[1].fqdn.as_deref(), Some("second.example:8443"));
    assert_eq!(eims[1].counter, 5);
    assert_eq!(eims[1].association_token, Some(9));
    assert_eq!(
        eims[1].public_key,
        second_key.to_uncompressed().unwrap().to_vec()
    );

    // A second addEim of the same id: associatedEimAlreadyExists (2).
    lab.queue(
        &eid,
        &[json!({"operation": "add-eim", "eim": {
            "eimId": SECOND_EIM,
            "eimPublicKey": second_spki,
        }})],
    )
    .await;
    let results = poll(1).await;
    assert_eq!(
        results[0]["outcome"]["codes"],
        json!([2]),
        "{:?}",
        results[0]
    );
    assert!(matches!(
        &signed_results(&results[0])[..],
        [sgp32::EuiccResultData::addEimResult(sgp32::AddEimResult::addEimResultCode(c))]
            if *c == Integer::from(2)
    ));
    assert_eq!(
        eims_on_card()[1..],
        eims[1..],
        "the second eIM is as it was"
    );

    // updateEim: a new FQDN and counter value; the key stays.
    lab.queue(
        &eid,
        &[
            json!({"operation": "update-eim", "eim": {
                "eimId": SECOND_EIM,
                "eimFqdn": "moved.example:9443",
                "counterValue": 40,
            }}),
            json!({"operation": "update-eim", "eim": {"eimId": "eim.unknown.test"}}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(3).await;
    assert_eq!(
        results[0]["outcome"]["codes"],
        json!([0]),
        "{:?}",
        results[0]
    );
    assert_eq!(
        results[1]["outcome"]["codes"],
        json!([1]),
        "eimNotFound: {:?}",
        results[1]
    );
    assert_eq!(listed_eims(&results[2]), [EIM_ID, SECOND_EIM]);
    let eims = eims_on_card();
    assert_eq!(eims[1].fqdn.as_deref(), Some("moved.example:9443"));
    assert_eq!(eims[1].counter, 40);
    assert_eq!(eims[1].association_token, Some(9));
    assert_eq!(
        eims[1].public_key,
        second_key.to_uncompressed().unwrap().to_vec()
    );

    // deleteEim: the second eIM goes; deleting it again is eimNotFound (1).
    lab.queue(
        &eid,
        &[
            json!({"operation": "delete-eim", "eimId": SECOND_EIM}),
            json!({"operation": "delete-eim", "eimId": SECOND_EIM}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(3).await;
    assert_eq!(
        results[0]["outcome"]["codes"],
        json!([0]),
        "{:?}",
        results[0]
    );
    assert_eq!(
        results[1]["outcome"]["codes"],
        json!([1]),
        "{:?}",
        results[1]
    );
    assert_eq!(listed_eims(&results[2]), [EIM_ID]);
    let eims = eims_on_card();
    assert_eq!(eims.len(), 1, "{eims:?}");
    assert_eq!(eims[0].eim_id, EIM_ID);

    // The eIM's own association is untouched: its queue is empty and a
    // later package still runs.
    let (_, view) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}"), None)
        .await;
    assert_eq!(view["queue"], json!([]), "{view}");
    assert_eq!(view["counter"], 9, "{view}");
    lab.queue(&eid, &[json!({"operation": "list-eim"})]).await;
    let results = poll(1).await;
    assert_eq!(listed_eims(&results[0]), [EIM_ID]);
}
