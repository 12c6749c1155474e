//! Profile revocation end to end over loopback HTTPS: a virtual IoT device
//! driven by the real IPA (`ferrosim ipa poll`) gets a profile from the
//! SM-DP+ through an eIM download trigger (order -> installed); the operator
//! revokes it over ES2+ `revokeProfile` (order ended, ICCID awaiting the
//! device the answer names); the disable and delete queued for that device
//! through the eIM's REST API run on the eUICC as signed packages in the
//! next poll; the device's delete notification reaches the SM-DP+, which then
//! moves the ICCID to the operator's policy state (quarantine from the delete).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
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
use ferrosim_smdp::store::{EndOfLifeStore, ProfileStore};
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

const EIM_ID: &str = "eim.revoke.test";
const TOKEN: i64 = 0x1F;

fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .output()
        .expect("running ferrosim")
}

fn ok(args: &[&str]) -> String {
    let out = ferrosim(args);
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
    dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

impl Lab {
    async fn start() -> Self {
        let smdp = TestSmdp::start(TestSmdpOptions {
            euiccs: 2,
            ..TestSmdpOptions::default()
        })
        .await
        .unwrap();
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

    async fn queue(&self, eid: &str, operation: Value) {
        let (status, body) = self
            .rest(
                "POST",
                &format!("/api/v1/eim/devices/{eid}/queue"),
                Some(operation),
            )
            .await;
        assert_eq!(status, 201, "{body}");
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
    fn add_initial_eim(&self) -> std::path::PathBuf {
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

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_profile_is_deleted_on_the_device_and_the_smdp_knows() {
    use ferrosim_smdp::end_of_life::{EndOfLifeState, device_to_clean};

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
            "--rplmn",
            "26201",
        ]);
        serde_json::from_str(&ok(&args)).unwrap()
    };

    // order -> installed
    let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
    let code = format!("1${}${matching_id}", lab.smdp.address);
    lab.queue(
        &eid,
        json!({"operation": "download", "activationCode": code}),
    )
    .await;
    let session = poll();
    assert_eq!(
        session["items"][0]["download"]["installed"],
        iccid.as_str(),
        "{session}"
    );
    assert_eq!(lab.order_state(&iccid).await, OrderState::Installed);
    lab.queue(&eid, json!({"operation": "enable", "iccid": iccid}))
        .await;
    assert_eq!(poll()["error"], Value::Null);

    // revoke over ES2+ (revokeProfile), on the listener that serves the eIM too
    let store = &lab.smdp.store;
    let icc = ferrosim_saip::Iccid::new(&iccid).unwrap();
    let es2 = |body: Value| {
        let request = lab
            .http
            .post(format!(
                "https://{}/gsma/rsp2/es2plus/revokeProfile",
                lab.eim_address
            ))
            .bearer_auth(&lab.smdp.token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let answer = es2(json!({
        "header": ferrosim_testkit::header(),
        "iccid": iccid,
        "reason": "stolen",
        "reusePolicy": "quarantine",
        "quarantineSeconds": 3600,
    }))
    .await;
    assert_eq!(
        answer["header"]["functionExecutionStatus"]["status"], "Executed-Success",
        "{answer}"
    );
    assert_eq!(
        answer["endOfLifeState"], "awaiting-device-delete",
        "{answer}"
    );
    assert_eq!(answer["deleteOnDevice"], eid.as_str(), "{answer}");
    let revocation = store.revocation(&icc).await.unwrap().unwrap();
    assert_eq!(revocation.state, EndOfLifeState::AwaitingDeviceDelete);
    assert_eq!(revocation.reason, "stolen");
    let twice = es2(json!({"header": ferrosim_testkit::header(), "iccid": iccid})).await;
    assert_eq!(
        twice["header"]["functionExecutionStatus"]["status"], "Failed",
        "revoked twice: {twice}"
    );
    let target = device_to_clean(&revocation).expect("on a device").digits();
    assert_eq!(target, eid);
    // the device named in the answer: disable + delete through the eIM's REST API
    lab.queue(&target, json!({"operation": "disable", "iccid": iccid}))
        .await;
    lab.queue(&target, json!({"operation": "delete", "iccid": iccid}))
        .await;
    assert!(
        store.settle_device_deletes().await.unwrap().is_empty(),
        "not yet deleted"
    );

    // deleted on the device; the notification reaches the SM-DP+
    let session = poll();
    assert_eq!(session["error"], Value::Null, "{session}");
    for item in 0..2 {
        assert_eq!(
            session["items"][item]["package"]["outcome"]["executed"]["codes"],
            json!([0]),
            "{session}"
        );
    }
    let (_, profiles) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/profiles"), None)
        .await;
    assert!(!profiles.to_string().contains(iccid.as_str()), "{profiles}");
    let moved = store.settle_device_deletes().await.unwrap();
    assert_eq!(
        moved.len(),
        1,
        "the SM-DP+ recorded the delete notification: {session}"
    );
    let done = store.revocation(&icc).await.unwrap().unwrap();
    assert_eq!(done.state, EndOfLifeState::Quarantined);
    let deleted_at = done.deleted_on_device_at.expect("delete time");
    assert_eq!(
        done.reusable_from(),
        Some(deleted_at.plus(std::time::Duration::from_secs(3600)))
    );

    // The device leaves the fleet: the IPA wipes the eUICC (EuiccMemoryReset).
    let reset = |options: &str| -> Output {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend(["memory-reset", "--reset", options]);
        ferrosim(&args)
    };
    for garbage in ["bogus", "", "eim-config,nothing", "EIM_CONFIG"] {
        let out = reset(garbage);
        let t = text(&out);
        assert!(!out.status.success(), "{garbage}: {t}");
        assert!(!t.contains("panicked"), "{garbage}: {t}");
    }
    let mut bare: Vec<&str> = vec!["ipa"];
    bare.extend(device);
    bare.push("memory-reset");
    assert!(!ferrosim(&bare).status.success(), "--reset is required");
    let options = "operational-profiles,test-profiles,default-smdp-address,eim-config,immediate-enable-config";
    let before = std::fs::read_to_string(&euicc_state).unwrap();
    assert!(before.contains(EIM_ID), "associated before the reset");
    let out = reset(options);
    assert!(out.status.success(), "{}", text(&out));
    let wiped: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The revoked profile was deleted already: nothing left to delete;
    // the eIM the device was associated with is forgotten.
    assert_eq!(
        wiped["profiles_and_address"], "nothing-to-delete",
        "{wiped}"
    );
    assert_eq!(wiped["eim_config"], "ok", "{wiped}");
    assert_ne!(wiped["immediate_enable_config"], Value::Null, "{wiped}");
    let state = std::fs::read_to_string(&euicc_state).unwrap();
    assert!(
        !state.contains(EIM_ID),
        "the eIM is gone from the eUICC: {state}"
    );
    // Again: nothing of either left.
    let again: Value = serde_json::from_slice(&reset("eim-config").stdout).unwrap();
    assert_eq!(again["eim_config"], "nothing-to-reset", "{again}");
    assert_eq!(again["immediate_enable_config"], Value::Null, "{again}");
}
