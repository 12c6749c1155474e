//! Fleet control in the server: the driver over the SQL fleet store, its
//! actions carried out by real components (ES2+ orders at two carriers'
//! SM-DP+s over HTTPS, download triggers queued in the eIM), the REST API
//! with scoped tokens and the OpenAPI document, garbage fed to every
//! endpoint, and signed operator webhooks checked by a receiver that
//! refuses altered and replayed ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_crypto::SoftwareKey;
use ferrosim_eim::{AssociationRequest, Counter, Eim, EimConfig, EimId, QueueItem, Timestamp};
use ferrosim_fleet::FleetConfig;
use ferrosim_ids::SystemClock;
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::es2_client::Es2Client;
use ferrosim_server::fleet::webhooks::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier, sign};
use ferrosim_server::fleet::{FleetDriver, FleetOptions, WebhookEndpoint, Webhooks};
use ferrosim_server::sandbox::{
    OPERATOR, PROFILE_TYPE, Sandbox, SandboxOptions, smdp_config, tls_identity,
};
use ferrosim_server::{RunningServer, ServerOptions, api};
use ferrosim_smdp::Smdp;
use ferrosim_store::{SqlStore, StoreOptions};
use serde_json::{Value, json};

const SECRET: &[u8] = b"webhook-secret-for-the-test";

/// A webhook receiver that verifies every request.
#[derive(Clone)]
struct Receiver {
    verifier: Arc<Mutex<Verifier>>,
    accepted: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let now = Timestamp::now().0 / 1000;
    let verdict = r.verifier.lock().unwrap().verify(
        h(TIMESTAMP_HEADER).as_deref(),
        h(SIGNATURE_HEADER).as_deref(),
        &body,
        now,
    );
    match verdict {
        Ok(()) => {
            r.accepted.lock().unwrap().push((headers, body));
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            r.refused.lock().unwrap().push(e.to_string());
            StatusCode::UNAUTHORIZED
        }
    }
}

struct Lab {
    a: Sandbox,
    b: Sandbox,
    eim: Eim<SqlStore>,
    store: SqlStore,
    eid: String,
    server: RunningServer,
    base: String,
    http: reqwest::Client,
    read_only: String,
    operator: String,
    admin: String,
    foreign: String,
    receiver: Receiver,
    receiver_url: String,
    _dir: tempfile::TempDir,
}

fn fleet_toml(a: &Sandbox, b: &Sandbox) -> String {
    format!(
        r#"
regions = ["north"]
[[carrier]]
name = "carrier-a"
mcc_mnc = ["310-410"]
smdp_address = "{a}"
es2_credentials = "file:a.toml"
fallback_carriers = ["carrier-b"]
[[carrier.apn]]
name = "iot"
apn = "iot.carrier-a.example"
[[carrier.profile_type]]
name = "{pt}"
apn = "iot"
[[carrier]]
name = "carrier-b"
mcc_mnc = ["234-15"]
smdp_address = "{b}"
es2_credentials = "file:b.toml"
fallback_carriers = ["carrier-a"]
[[carrier.apn]]
name = "iot"
apn = "m2m.carrier-b.example"
[[carrier.profile_type]]
name = "{pt}"
apn = "iot"
[[group]]
name = "meters"
rule = "default"
primary = {{ carrier = "carrier-a", profile_type = "{pt}", version = 1 }}
fallback = {{ carrier = "carrier-b", profile_type = "{pt}", version = 1 }}
[[rule]]
name = "default"
registration_failures = {{ count = 3, window = "5m" }}
return_dwell = "15m"
min_on_fallback = "10m"
max_switches_per_hour = 4
max_fraction_per_minute = 0.5
jitter = "1s"
"#,
        a = a.address,
        b = b.address,
        pt = PROFILE_TYPE
    )
}

impl Lab {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = SandboxOptions {
            euiccs: 1,
            profiles: 4,
            ..SandboxOptions::default()
        };
        let a = Sandbox::start(options.clone()).await.unwrap();
        let b = Sandbox::start(options).await.unwrap();
        let mut trust = a.ci_pem().into_bytes();
        trust.extend(b.ci_pem().as_bytes());
        let es2_a = Es2Client::new(&a.base_url(), OPERATOR, &a.token, &trust).unwrap();
        let es2_b = Es2Client::new(&b.base_url(), OPERATOR, &b.token, &trust).unwrap();

        let pki = TestPki::generate(&TestPkiOptions {
            euicc_count: 1,
            smdp_address: "localhost".into(),
            ..TestPkiOptions::default()
        })
        .unwrap();
        let store = SqlStore::connect(
            &format!("sqlite:{}", dir.path().join("fleet.db").display()),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("localhost:{}", listener.local_addr().unwrap().port());
        let smdp = Smdp::new(smdp_config(&pki, &address, None).unwrap(), store.clone());
        let eim = Eim::new(
            store.clone(),
            EimConfig {
                eim_id: EimId::new("eim.fleet.test").unwrap(),
                key: Arc::new(SoftwareKey::generate().unwrap()),
                trust: pki.trust_store().unwrap(),
            },
        );
        let issued = &pki.euiccs[0];
        let eid = issued.certificate.eid().unwrap();
        eim.associate(
            AssociationRequest {
                eid,
                eum_certificate: pki.eum.certificate.der().to_vec(),
                euicc_certificate: issued.certificate.der().to_vec(),
                counter: Counter::new(10).unwrap(),
                association_token: Some(0x42),
                euicc_version: Sgp32Version::V1_2,
                emulated: false,
            },
            Timestamp::now(),
        )
        .await
        .unwrap();

        let receiver = Receiver {
            verifier: Arc::new(Mutex::new(Verifier::new(SECRET, Duration::from_secs(300)))),
            accepted: Arc::default(),
            refused: Arc::default(),
        };
        let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver_url = format!("http://{}/hooks", sink.local_addr().unwrap());
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(sink, app).await.unwrap() });

        let clock: Arc<dyn ferrosim_ids::Clock> = Arc::new(SystemClock);
        let hooks = Webhooks::new(
            vec![WebhookEndpoint {
                name: "ops".into(),
                url: receiver_url.clone(),
                secret: SECRET.to_vec(),
            }],
            reqwest::Client::new(),
            clock.clone(),
        );
        let config = FleetConfig::from_toml(&fleet_toml(&a, &b)).unwrap();
        let driver = FleetDriver::open(
            store.fleet(),
            Some(eim.clone()),
            config,
            ferrosim_telemetry::Dictionary::new(),
            clock,
            FleetOptions {
                tick: Duration::from_millis(50),
                es2: HashMap::from([("carrier-a".into(), es2_a), ("carrier-b".into(), es2_b)]),
                ..FleetOptions::default()
            },
            Some(hooks.clone()),
        )
        .await
        .unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        std::mem::forget(_stop);
        driver.spawn(stopped.clone());
        hooks.spawn(store.fleet(), stopped);

        let tokens = MemTokenStore::new();
        let mut rng = rand::rng();
        let mut token = |scope| {
            let (text, t) = new_token("test", scope, &mut rng, Timestamp(1));
            tokens.insert(t);
            text
        };
        let read_only = token(Scope::ReadOnly);
        let operator = token(Scope::Operator);
        let admin = token(Scope::Admin);
        // A well-formed token this server never issued.
        let (foreign, _) = new_token("elsewhere", Scope::Admin, &mut rand::rng(), Timestamp(1));
        let routes = api::fleet::routes(driver, tokens).merge(api::openapi_route());
        let server = ferrosim_server::start_with(
            listener,
            smdp,
            ServerOptions::new(tls_identity(&pki)),
            routes,
        )
        .await
        .unwrap();
        let ci = reqwest::Certificate::from_pem(pki.ci.certificate_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ci])
            .build()
            .unwrap();
        Self {
            a,
            b,
            eim,
            store: store.clone(),
            eid: eid.to_string(),
            server,
            base: format!("https://{address}"),
            http,
            read_only,
            operator,
            admin,
            foreign,
            receiver,
            receiver_url,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A call with any method and an optional `If-Match`; the status, the
    /// body and the `ETag`.
    async fn call_versioned(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
        if_match: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(v) = if_match {
            r = r.header("if-match", format!("\"{v}\""));
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().trim_matches('"').to_owned());
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            etag,
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(&self.operator), Some(&body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(&self.read_only), None).await
    }

    /// The eIM queue of the device.
    async fn queue(&self) -> Vec<QueueItem> {
        self.eim
            .device(&self.eid.parse().unwrap())
            .await
            .unwrap()
            .queue
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn fleet_api_drives_es2_and_the_eim_and_signs_webhooks() {
    let lab = Lab::start().await;
    let eid = lab.eid.clone();

    // A device without profiles: the fleet orders its primary at carrier
    // A's SM-DP+ (ES2+ downloadOrder + confirmOrder over HTTPS) and queues
    // the download trigger at the eIM with the activation code.
    let spec = json!({
        "eid": eid, "group": "meters", "vendor": "acme", "model": "m1", "firmware": "1.0.0",
        "region": "north", "capabilities": {"sgp32_version": [1, 2, 0]}
    });
    let (s, v) = lab.post("/api/v1/fleet/devices", &spec).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["desired_primary"].as_str().unwrap(),
        format!("carrier-a/{PROFILE_TYPE}@1")
    );
    let (s, v) = lab.post("/api/v1/fleet/devices", &spec).await;
    assert_eq!(s, 409, "{v}");

    wait_until("the download trigger at the eIM", || async {
        !lab.queue().await.is_empty()
    })
    .await;
    let queue = lab.queue().await;
    let code = format!("1${}$", lab.a.address);
    assert!(
        queue[0]
            .der
            .windows(code.len())
            .any(|w| w == code.as_bytes()),
        "{queue:?}"
    );
    // The order is at carrier A's SM-DP+, none at B's.
    let orders_a = ferrosim_testkit::audit::orders(&lab.a.store).await.unwrap();
    let orders_b = ferrosim_testkit::audit::orders(&lab.b.store).await.unwrap();
    assert!(
        orders_a.values().any(|o| format!("{o:?}").contains(&eid)),
        "{orders_a:?}"
    );
    assert!(orders_b.is_empty(), "{orders_b:?}");

    let (s, v) = lab.get(&format!("/api/v1/fleet/devices/{eid}")).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["in_flight"].is_string(), "{v}");
    let (s, v) = lab.get("/api/v1/fleet/devices?limit=10").await;
    assert_eq!((s, v["devices"].as_array().unwrap().len()), (200, 1), "{v}");
    let (s, v) = lab
        .get(&format!("/api/v1/fleet/decisions?device={eid}"))
        .await;
    assert_eq!(s, 200, "{v}");
    let commands: Vec<String> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["what"]["command"].as_str().map(str::to_owned))
        .collect();
    assert!(
        commands.contains(&"es2.downloadOrder".to_owned())
            && commands.contains(&"es2.confirmOrder".to_owned())
            && commands.contains(&"eim.profileDownloadTrigger".to_owned()),
        "{commands:?}"
    );

    // Reports and carrier events are taken; the catalog reads back.
    let (s, v) = lab
        .post(
            "/api/v1/fleet/reports",
            &json!({"reports": [
                {"device": eid, "kind": {"type": "registration", "outcome": {"result": "rejected", "cause": 15}}},
                {"device": eid, "kind": {"type": "data_path", "latency_ms": 80, "loss_permille": 0}}
            ]}),
        )
        .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(2)), "{v}");
    let (s, v) = lab
        .post(
            "/api/v1/fleet/carriers/carrier-a/events",
            &json!({"events": [
                {"eid": eid, "event": "attach_rejected", "cause": 15, "plmn": "310-410"},
                {"eid": eid, "event": "data_session_end"}
            ]}),
        )
        .await;
    assert_eq!(
        (s, v["accepted"].as_u64(), v["ignored"].as_u64()),
        (200, Some(1), Some(1)),
        "{v}"
    );
    for part in ["carriers", "groups", "rules"] {
        let (s, v) = lab.get(&format!("/api/v1/fleet/{part}")).await;
        assert_eq!(s, 200, "{part}: {v}");
        assert!(!v.as_array().unwrap().is_empty(), "{part}: {v}");
    }
    let (s, v) = lab
        .post(
            "/api/v1/fleet/outages",
            &json!({"carrier": "carrier-a", "region": "north", "declared": true}),
        )
        .await;
    assert_eq!(s, 204, "{v}");

    // Rollouts: created waiting for nothing, paused, resumed, aborted.
    let (s, v) = lab
        .post(
            "/api/v1/fleet/rollouts",
            &json!({"name": "rule change", "change": {"kind": "rule", "rule": "default"},
                    "waves": [50, 100], "manual_approval": true}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let (s, v) = lab
        .post(&format!("/api/v1/fleet/rollouts/{id}/pause"), &json!(null))
        .await;
    assert!(s == 200 || s == 409, "{s} {v}");
    let (s, v) = lab
        .post(&format!("/api/v1/fleet/rollouts/{id}/abort"), &json!(null))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"].as_str(), Some("aborted"), "{v}");
    let (s, v) = lab
        .post(&format!("/api/v1/fleet/rollouts/{id}/resume"), &json!(null))
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = lab.get("/api/v1/fleet/rollouts").await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 1), "{v}");

    // Webhooks: decisions arrive signed and verified; an altered body and
    // a replayed request are refused by the receiver.
    wait_until("signed webhooks", || async {
        let got = lab.receiver.accepted.lock().unwrap();
        got.iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("rollout."))
            && got
                .iter()
                .any(|(_, b)| String::from_utf8_lossy(b).contains("device."))
    })
    .await;
    assert!(lab.receiver.refused.lock().unwrap().is_empty());
    let (headers, body) = lab.receiver.accepted.lock().unwrap()[0].clone();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert!(event["id"].as_str().unwrap().starts_with('d'), "{event}");
    let http = reqwest::Client::new();
    let send = |ts: String, sig: String, body: Vec<u8>| {
        http.post(&lab.receiver_url)
            .header(TIMESTAMP_HEADER, ts)
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
    };
    let ts = headers[TIMESTAMP_HEADER].to_str().unwrap().to_owned();
    let sig = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    let replayed = send(ts.clone(), sig.clone(), body.to_vec()).await.unwrap();
    assert_eq!(replayed.status(), 401);
    let mut altered = body.to_vec();
    altered[2] ^= 1;
    assert_eq!(send(ts.clone(), sig, altered).await.unwrap().status(), 401);
    let old = Timestamp::now().0 / 1000 - 3600;
    let stale = send(old.to_string(), sign(SECRET, old, &body), body.to_vec())
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    let refused = lab.receiver.refused.lock().unwrap().clone();
    assert!(refused[0].contains("replayed"), "{refused:?}");
    assert!(refused[1].contains("signature"), "{refused:?}");
    assert!(refused[2].contains("replay window"), "{refused:?}");

    // The OpenAPI document covers the fleet's and the eIM's... paths.
    let doc: Value = lab
        .http
        .get(format!("{}/openapi.json", lab.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/fleet/reports",
        "/api/v1/fleet/rollouts/{id}/{command}",
        "/api/v1/fleet/carriers/{carrier}/events",
        "/api/v1/fleet/devices/{eid}/profiles/{iccid}/revoke",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    drop(lab.server);
}

#[tokio::test]
async fn every_endpoint_refuses_garbage_and_foreign_tokens() {
    let lab = Lab::start().await;
    let eid = lab.eid.clone();
    let posts = [
        "/api/v1/fleet/rules",
        "/api/v1/fleet/devices",
        "/api/v1/fleet/rollouts",
        "/api/v1/fleet/rollouts/1/approve",
        "/api/v1/fleet/rollouts/1/pause",
        "/api/v1/fleet/rollouts/1/resume",
        "/api/v1/fleet/rollouts/1/abort",
        "/api/v1/fleet/outages",
        "/api/v1/fleet/reports",
        "/api/v1/fleet/carriers/carrier-a/events",
        &format!("/api/v1/fleet/devices/{eid}/agent"),
    ];
    let gets = [
        "/api/v1/fleet/carriers",
        "/api/v1/fleet/groups",
        "/api/v1/fleet/rules",
        "/api/v1/fleet/devices",
        "/api/v1/fleet/rollouts",
        "/api/v1/fleet/rollouts/1",
        "/api/v1/fleet/decisions",
        &format!("/api/v1/fleet/devices/{eid}"),
    ];
    for p in posts.iter().chain(gets.iter()) {
        let method = if posts.contains(p) { "POST" } else { "GET" };
        for token in [None, Some(lab.foreign.as_str()), Some("fsk_garbage")] {
            let (s, v) = lab.call(method, p, token, Some("{}")).await;
            assert_eq!(s, 401, "{method} {p}: {v}");
            assert_eq!(
                v["error"]["code"].as_str(),
                Some("unauthorized"),
                "{p}: {v}"
            );
        }
    }
    for p in posts {
        let (s, v) = lab.call("POST", p, Some(&lab.read_only), Some("{}")).await;
        assert_eq!(s, 403, "{p}: {v}");
        for garbage in ["{", "[]", "\u{0}", "{\"eid\": 5}", "null"] {
            let (s, v) = lab
                .call("POST", p, Some(&lab.operator), Some(garbage))
                .await;
            if p.contains("/rollouts/1/") {
                // Takes no body: an unknown rollout.
                assert_eq!(s, 404, "{p} {garbage:?}: {v}");
            } else {
                assert_eq!(s, 400, "{p} {garbage:?}: {v}");
                assert!(v["error"]["message"].as_str().unwrap().len() > 5, "{v}");
            }
        }
    }
    // Unknown fields and out-of-range values, nothing taken.
    let bad: &[(&str, Value, u16)] = &[
        (
            "/api/v1/fleet/devices",
            json!({"eid": eid, "group": "meters", "vendor": "a", "model": "b",
            "firmware": "1.0", "capabilities": {"sgp32_version": [1, 2, 0]}, "colour": "red"}),
            400,
        ),
        (
            "/api/v1/fleet/devices",
            json!({"eid": eid, "group": "nope", "vendor": "a", "model": "b",
            "firmware": "1.0", "capabilities": {"sgp32_version": [1, 2, 0]}}),
            422,
        ),
        (
            "/api/v1/fleet/reports",
            json!({"reports": [], "extra": 1}),
            400,
        ),
        (
            "/api/v1/fleet/reports",
            json!({"reports": [{"device": eid, "kind": {"type": "data_path",
            "latency_ms": 1, "loss_permille": 2000}}]}),
            400,
        ),
        (
            "/api/v1/fleet/reports",
            json!({"reports": [{"device": "89049032123451234512345678901235",
            "kind": {"type": "handover_failure", "cause": 1}}]}),
            422,
        ),
        (
            "/api/v1/fleet/outages",
            json!({"carrier": "carrier-z", "declared": true}),
            422,
        ),
        (
            "/api/v1/fleet/rules",
            json!({"name": "strict", "registration_failures": {"count": 2, "window": "1m"},
            "colour": "red"}),
            400,
        ),
        (
            "/api/v1/fleet/rules",
            json!({"name": "strict", "max_switches_per_hour": 0}),
            422,
        ),
        ("/api/v1/fleet/rules", json!({"name": "default"}), 409),
        (
            "/api/v1/fleet/outages",
            json!({"carrier": "carrier-a", "declared": true, "why": 1}),
            400,
        ),
        (
            "/api/v1/fleet/rollouts",
            json!({"name": "x", "change": {"kind": "rule", "rule": "nope"}}),
            422,
        ),
        (
            "/api/v1/fleet/rollouts",
            json!({"name": "x", "change": {"kind": "warp"}}),
            400,
        ),
        (
            "/api/v1/fleet/carriers/carrier-z/events",
            json!({"events": []}),
            404,
        ),
        (
            "/api/v1/fleet/carriers/carrier-a/events",
            json!({"events": [{"eid": eid, "event": "boom"}]}),
            400,
        ),
        (
            "/api/v1/fleet/carriers/carrier-a/events",
            json!({"events": [{"iccid": "89", "event": "attach_accepted"}]}),
            400,
        ),
        (
            "/api/v1/fleet/carriers/carrier-a/events",
            json!({"events": [{"eid": eid, "event": "attach_rejected"}]}),
            400,
        ),
    ];
    for (p, body, want) in bad {
        let (s, v) = lab.post(p, body).await;
        assert_eq!(s, *want, "{p} {body}: {v}");
    }
    let (s, v) = lab.get("/api/v1/fleet/devices?limit=0").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = lab.get("/api/v1/fleet/devices?after=12").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = lab.get("/api/v1/fleet/decisions?colour=1").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = lab.get("/api/v1/fleet/rollouts/x").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = lab
        .post("/api/v1/fleet/rollouts/1/launch", &json!(null))
        .await;
    assert_eq!(s, 404, "{v}");
    // Wrong content type.
    let resp = lab
        .http
        .post(format!("{}/api/v1/fleet/reports", lab.base))
        .bearer_auth(&lab.operator)
        .body("reports=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // Nothing was registered by any of it.
    let (s, v) = lab.get("/api/v1/fleet/devices").await;
    assert_eq!((s, v["devices"].as_array().unwrap().len()), (200, 0), "{v}");
    assert!(lab.queue().await.is_empty());
    let (s, v) = lab.get("/api/v1/fleet/rules").await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 1), "{v}");
}

/// A failover rule added over REST is checked like the TOML's, kept in
/// the fleet's stored configuration, and devices move to it through a rule
/// rollout.
#[tokio::test]
async fn a_rule_added_over_rest_is_rolled_out_to_devices() {
    let lab = Lab::start().await;
    let rule = json!({"name": "strict", "registration_failures": {"count": 2, "window": "1m"},
        "return_dwell": "20m", "max_switches_per_hour": 2});
    let (s, v) = lab.post("/api/v1/fleet/rules", &rule).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "strict");
    assert_eq!(v["max_switches_per_hour"], 2);
    let (s, v) = lab.post("/api/v1/fleet/rules", &rule).await;
    assert_eq!(s, 409, "{v}");
    let (_, rules) = lab.get("/api/v1/fleet/rules").await;
    let names: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "strict"]);
    // Kept in the stored fleet: a driver opened on the same database has
    // it.
    let stored = ferrosim_fleet::store::load(
        &lab.store.fleet(),
        ferrosim_telemetry::Dictionary::new(),
        ferrosim_ids::Timestamp::now(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(stored.catalog().rule_id("strict").is_some());
    // A device moves to it through a rule rollout.
    let (s, v) = lab
        .post(
            "/api/v1/fleet/devices",
            &json!({"eid": lab.eid, "group": "meters", "vendor": "acme", "model": "m1",
                "firmware": "1.0.0", "capabilities": {"sgp32_version": [1, 2, 0]}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["rule"], "default", "{v:#}");
    let (s, v) = lab
        .post(
            "/api/v1/fleet/rollouts",
            &json!({"name": "strict rule", "change": {"kind": "rule", "rule": "strict"},
                "waves": [100], "soak": "1m"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["wave_sizes"], json!([1]), "{v:#}");
    let (s, v) = lab.get(&format!("/api/v1/fleet/devices/{}", lab.eid)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rule"], "strict", "{v:#}");
}

#[tokio::test]
async fn carriers_groups_and_rules_change_over_rest_with_versions() {
    use ferrosim_fleet::store::FleetStore;
    use reqwest::Method;
    let lab = Lab::start().await;
    let (put, del, get) = (Method::PUT, Method::DELETE, Method::GET);
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();
    // A carrier read with its version (body and ETag alike).
    let (s, a, etag) = lab
        .call_versioned(
            get.clone(),
            "/api/v1/fleet/carriers/carrier-a",
            &lab.read_only,
            None,
            None,
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let v1 = a["version"].as_str().unwrap().to_owned();
    assert_eq!(etag.as_deref(), Some(v1.as_str()));
    let mut carrier = a["item"].clone();
    carrier["rate_limits"]["es2_per_minute"] = json!(120);
    let body = carrier.to_string();
    let path = "/api/v1/fleet/carriers/carrier-a";
    // Read-only and operator tokens may not change carriers; foreign ones
    // are unknown.
    for (t, want) in [
        (&lab.read_only, 403),
        (&lab.operator, 403),
        (&lab.foreign, 401),
    ] {
        let (s, v, _) = lab
            .call_versioned(put.clone(), path, t, Some(&body), Some(&v1))
            .await;
        assert_eq!(s, want, "{v}");
    }
    // Without its version: 428; garbage and unknown fields: 400; another
    // name in the body: 422.
    let (s, v, _) = lab
        .call_versioned(put.clone(), path, &lab.admin, Some(&body), None)
        .await;
    assert_eq!((s, code(&v).as_str()), (428, "version_required"), "{v}");
    for garbage in ["{", "[]", "null", r#"{"name": "carrier-a"}"#] {
        let (s, v, _) = lab
            .call_versioned(put.clone(), path, &lab.admin, Some(garbage), Some(&v1))
            .await;
        assert_eq!(s, 400, "{garbage}: {v}");
    }
    let mut unknown = carrier.clone();
    unknown["colour"] = json!("red");
    let (s, v, _) = lab
        .call_versioned(
            put.clone(),
            path,
            &lab.admin,
            Some(&unknown.to_string()),
            Some(&v1),
        )
        .await;
    assert!(s == 400 && v.to_string().contains("colour"), "{s} {v}");
    let mut renamed = carrier.clone();
    renamed["name"] = json!("carrier-z");
    let (s, v, _) = lab
        .call_versioned(
            put.clone(),
            path,
            &lab.admin,
            Some(&renamed.to_string()),
            Some(&v1),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    // The change with the version read.
    let (s, v, etag) = lab
        .call_versioned(put.clone(), path, &lab.admin, Some(&body), Some(&v1))
        .await;
    assert_eq!(s, 200, "{v}");
    let v2 = etag.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(v["item"]["rate_limits"]["es2_per_minute"], 120);
    let (_, listed) = lab.get("/api/v1/fleet/carriers").await;
    assert_eq!(listed[0]["rate_limits"]["es2_per_minute"], 120, "{listed}");
    // A second writer with the old version is refused; nothing changes.
    carrier["rate_limits"]["es2_per_minute"] = json!(7);
    let (s, v, _) = lab
        .call_versioned(
            put.clone(),
            path,
            &lab.admin,
            Some(&carrier.to_string()),
            Some(&v1),
        )
        .await;
    assert_eq!((s, code(&v).as_str()), (412, "stale_version"), "{v}");
    let (_, v, _) = lab
        .call_versioned(get.clone(), path, &lab.read_only, None, None)
        .await;
    assert_eq!(v["version"], json!(v2));
    // Deletes that would strand devices or groups: 409.
    let (s, v, _) = lab
        .call_versioned(del.clone(), path, &lab.admin, None, Some(&v2))
        .await;
    assert!(s == 409 && v.to_string().contains("carrier-a"), "{s} {v}");
    let (s, v, _) = lab
        .call_versioned(del.clone(), path, &lab.admin, None, None)
        .await;
    assert_eq!(s, 428, "{v}");
    // A new carrier: created without If-Match (201), then deleted.
    let mut c = carrier.clone();
    c["name"] = json!("carrier-c");
    c["fallback_carriers"] = json!([]);
    let (s, v, etag) = lab
        .call_versioned(
            put.clone(),
            "/api/v1/fleet/carriers/carrier-c",
            &lab.admin,
            Some(&c.to_string()),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let vc = etag.unwrap();
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/carriers/carrier-c",
            &lab.operator,
            None,
            Some(&vc),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/carriers/carrier-c",
            &lab.admin,
            None,
            Some(&vc),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, _, _) = lab
        .call_versioned(
            get.clone(),
            "/api/v1/fleet/carriers/carrier-c",
            &lab.read_only,
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/carriers/carrier-c",
            &lab.admin,
            None,
            Some(&vc),
        )
        .await;
    assert_eq!(s, 412, "it is gone");

    // A device in group meters: the group is not deleted; a group without
    // devices is created, changed and deleted by an operator.
    let (s, v) = lab
        .post(
            "/api/v1/fleet/devices",
            &json!({"eid": lab.eid, "group": "meters", "vendor": "acme", "model": "m1",
                "firmware": "1.0.0", "capabilities": {"sgp32_version": [1, 2, 0]}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, g, _) = lab
        .call_versioned(
            get.clone(),
            "/api/v1/fleet/groups/meters",
            &lab.read_only,
            None,
            None,
        )
        .await;
    let vg = g["version"].as_str().unwrap().to_owned();
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/groups/meters",
            &lab.operator,
            None,
            Some(&vg),
        )
        .await;
    assert!(s == 409 && v.to_string().contains("device"), "{s} {v}");
    let mut spare = g["item"].clone();
    spare["name"] = json!("spare");
    let (s, v, etag) = lab
        .call_versioned(
            put.clone(),
            "/api/v1/fleet/groups/spare",
            &lab.operator,
            Some(&spare.to_string()),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = lab
        .call_versioned(
            put.clone(),
            "/api/v1/fleet/groups/spare",
            &lab.read_only,
            Some(&spare.to_string()),
            etag.as_deref(),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    // A rule no group uses is deleted; the group's rule is not.
    let rule = json!({"name": "strict", "registration_failures": {"count": 2, "window": "1m"}});
    let (s, v, vr) = lab
        .call_versioned(
            put.clone(),
            "/api/v1/fleet/rules/strict",
            &lab.operator,
            Some(&rule.to_string()),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    spare["rule"] = json!("strict");
    let (s, v, vs) = lab
        .call_versioned(
            put.clone(),
            "/api/v1/fleet/groups/spare",
            &lab.operator,
            Some(&spare.to_string()),
            etag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/rules/strict",
            &lab.operator,
            None,
            vr.as_deref(),
        )
        .await;
    assert!(s == 409 && v.to_string().contains("spare"), "{s} {v}");
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/groups/spare",
            &lab.operator,
            None,
            vs.as_deref(),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, v, _) = lab
        .call_versioned(
            del.clone(),
            "/api/v1/fleet/rules/strict",
            &lab.operator,
            None,
            vr.as_deref(),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    // The changes are in the stored configuration (a restart keeps them).
    let stored = lab.store.fleet().engine().await.unwrap().unwrap();
    let a = stored
        .record
        .config
        .carriers
        .iter()
        .find(|c| c.name == "carrier-a")
        .unwrap();
    assert_eq!(a.rate_limits.es2_per_minute, 120);
    assert!(
        stored
            .record
            .config
            .groups
            .iter()
            .all(|g| g.name != "spare")
    );
    // The OpenAPI document names the new operations.
    let (s, doc) = lab.call("GET", "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(
        doc["paths"]["/api/v1/fleet/carriers/{name}"]["put"].is_object(),
        "{}",
        doc["paths"]
    );
    assert!(doc["paths"]["/api/v1/fleet/rules/{name}"]["delete"].is_object());
}

/// EUICCInfo2 of an eUICC speaking SGP.32 `version`, with or without the
/// fallback mechanism (`iotSpecificInfo`).
fn euicc_info2(version: [u8; 3], fallback: bool) -> Vec<u8> {
    use ferrosim_asn1::rasn::types::{FixedOctetString, OctetString};
    use ferrosim_asn1::{rsp, sgp32};
    let v = |b: [u8; 3]| rsp::VersionType(FixedOctetString::new(b));
    let info = sgp32::EUICCInfo2::new(
        v([2, 3, 0]),
        v([2, 3, 0]),
        v([1, 0, 0]),
        OctetString::from(Vec::new()),
        ferrosim_asn1::pe::UICCCapability(Default::default()),
        None,
        None,
        rsp::RspCapability(Default::default()),
        vec![],
        vec![],
        None,
        None,
        v([1, 0, 0]),
        String::new(),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some(sgp32::IoTSpecificInfo::new(
            vec![v(version)],
            None,
            fallback.then_some(()),
            None,
        )),
        None,
    );
    ferrosim_asn1::encode_der(&info).unwrap()
}

impl Lab {
    /// Registers the lab's device in `meters` (an acme m1 on firmware 1.0.0
    /// in `north`) declaring SGP.32 `sgp32_version`; returns its view.
    async fn register_meter(&self, sgp32_version: [u8; 3]) -> Value {
        let (s, v) = self
            .post(
                "/api/v1/fleet/devices",
                &json!({"eid": self.eid, "group": "meters", "vendor": "acme", "model": "m1",
                    "firmware": "1.0.0", "region": "north",
                    "capabilities": {"sgp32_version": sgp32_version}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// Stores EUICCInfo2 in the eIM's record of the device, as the eIM
    /// does when the device's IPA answers an IpaEuiccDataRequest. The
    /// server's own work may rewrite the record between the read and the
    /// compare-and-set: like the eIM's steps, the write is then made again
    /// on the record as it is now.
    async fn ipa_reports(&self, info2: Vec<u8>) {
        use ferrosim_eim::store::{DeviceWrite, StoreError};
        use ferrosim_eim::{EimChanges, EimStore};
        let eid = self.eid.parse().unwrap();
        for _ in 0..20 {
            let read = EimStore::device(&self.store, &eid).await.unwrap().unwrap();
            let mut record = read.record;
            record.euicc.info2 = Some(info2.clone());
            record.euicc.reported_at = Some(Timestamp::now());
            let written = EimStore::commit(
                &self.store,
                EimChanges {
                    device: Some(DeviceWrite::Update {
                        expected: read.version,
                        record,
                    }),
                    ..EimChanges::default()
                },
            )
            .await;
            match written {
                Ok(()) => return,
                Err(StoreError::Stale) => continue,
                Err(e) => panic!("storing EUICCInfo2: {e}"),
            }
        }
        panic!("the device record kept changing under the EUICCInfo2 write");
    }
}

#[tokio::test]
async fn capabilities_an_ipa_reports_later_are_taken_and_used_by_rollouts() {
    let lab = Lab::start().await;
    let eid = lab.eid.clone();
    // Registered as an old eUICC: SGP.32 1.0, no fallback mechanism.
    let v = lab.register_meter([1, 0, 0]).await;
    assert_eq!(v["capabilities"]["source"], "registered", "{v}");
    let rollout = json!({"name": "needs 1.2", "change": {"kind": "rule", "rule": "default"},
        "waves": [100], "compat": {"min_sgp32": "1.2", "requires_fallback_support": true}});
    let (s, v) = lab.post("/api/v1/fleet/rollouts", &rollout).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["eligible"].as_u64(), v["skipped"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );

    // A firmware update: the IPA reports SGP.32 1.2.0 with the fallback
    // mechanism. The driver takes it from the eIM's record.
    lab.ipa_reports(euicc_info2([1, 2, 0], true)).await;
    let path = format!("/api/v1/fleet/devices/{eid}");
    wait_until("the refreshed capabilities", || async {
        let (_, v) = lab.get(&path).await;
        v["capabilities"]["source"] == "ipa"
    })
    .await;
    let (_, v) = lab.get(&path).await;
    let caps = &v["capabilities"];
    assert_eq!(
        (
            &caps["sgp32_version"],
            &caps["fallback_supported"],
            &caps["rollback_supported"]
        ),
        (&json!("1.2.0"), &json!(true), &json!(true)),
        "{v:#}"
    );
    let (_, v) = lab
        .get(&format!("/api/v1/fleet/decisions?device={eid}"))
        .await;
    let logged: Vec<&Value> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["what"]["decision"] == "capabilities")
        .collect();
    assert_eq!(logged.len(), 1, "{v:#}");
    assert_eq!(
        logged[0]["reason"]["event"], "ipa_euicc_data",
        "{:#}",
        logged[0]
    );
    assert_eq!(
        logged[0]["what"]["capabilities"]["sgp32_version"],
        json!([1, 2, 0])
    );
    // A rollout needing them takes the device now.
    let (s, v) = lab.post("/api/v1/fleet/rollouts", &rollout).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["eligible"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );

    // A later report of an older version (a firmware downgrade) is taken
    // too; one without readable EUICCInfo2 changes nothing.
    lab.ipa_reports(euicc_info2([1, 1, 0], false)).await;
    wait_until("the second refresh", || async {
        let (_, v) = lab.get(&path).await;
        v["capabilities"]["sgp32_version"] == "1.1.0"
    })
    .await;
    lab.ipa_reports(vec![0xBF, 0x22, 0x01, 0x00]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = lab.get(&path).await;
    assert_eq!(v["capabilities"]["sgp32_version"], "1.1.0", "{v:#}");
    assert_eq!(v["capabilities"]["fallback_supported"], false, "{v:#}");
}

#[tokio::test]
async fn the_registered_network_of_a_report_shows_in_the_device_view() {
    let lab = Lab::start().await;
    let eid = lab.eid.clone();
    let v = lab.register_meter([1, 2, 0]).await;
    assert_eq!(
        (&v["registered_plmn"], &v["roaming"]),
        (&Value::Null, &json!(false))
    );
    let path = format!("/api/v1/fleet/devices/{eid}");
    let registered = |plmn: &str| {
        json!({"reports": [{"device": eid, "kind": {"type": "registration",
            "outcome": {"result": "registered"}, "plmn": plmn}}]})
    };
    // Until its profile is enabled the device counts as on its primary's
    // carrier (A: 310-410). On B's network it is roaming.
    for (plmn, roaming) in [("234-15", true), ("310410", false), ("001-01", true)] {
        let (s, v) = lab.post("/api/v1/fleet/reports", &registered(plmn)).await;
        assert_eq!(s, 200, "{v}");
        let (_, v) = lab.get(&path).await;
        let shown = ferrosim_fleet::catalog::MccMnc::parse(plmn)
            .unwrap()
            .to_string();
        assert_eq!(
            (&v["registered_plmn"], &v["roaming"]),
            (&json!(shown), &json!(roaming)),
            "{plmn}: {v:#}"
        );
    }
    let (s, v) = lab
        .post(
            "/api/v1/fleet/reports",
            &json!({"reports": [{"device": eid, "kind": {"type": "registration",
                "outcome": {"result": "registered"}, "plmn": "31-0410"}}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

impl Lab {
    /// Registers a device that already holds its primary profile (enabled,
    /// working) and its staged fallback, so it converges without the eIM.
    async fn add_converged(&self, eid: &str, n: u64) {
        let iccid =
            |c: u64| ferrosim_ids::Iccid::from_body(&format!("89440000{c:02}{n:09}")).unwrap();
        let profile = |carrier: &str| json!({"carrier": carrier, "profile_type": PROFILE_TYPE});
        let (s, v) = self
            .post(
                "/api/v1/fleet/devices",
                &json!({"eid": eid, "group": "meters", "vendor": "acme", "model": "m1",
                "firmware": "1.0.0", "region": "north",
                "capabilities": {"sgp32_version": [1, 2, 0]},
                "profiles": [
                    {"iccid": iccid(1).to_string(), "profile_type": profile("carrier-a"),
                     "enabled": true, "works": true},
                    {"iccid": iccid(2).to_string(), "profile_type": profile("carrier-b")}
                ]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    /// What the devices' agents and modems do: every command answered as
    /// carried out, a registration on A's network and a good data path
    /// reported.
    async fn tend(&self, eids: &[String]) {
        for eid in eids {
            let path = format!("/api/v1/fleet/devices/{eid}/agent");
            let (_, v) = self.call("GET", &path, Some(&self.operator), None).await;
            for c in v["commands"].as_array().into_iter().flatten() {
                let body = json!({"action": c["action"], "ok": true});
                let (s, v) = self.post(&path, &body).await;
                assert!(s == 204 || s == 200 || s == 409, "{s} {v}");
            }
            let (s, v) = self
                .post(
                    "/api/v1/fleet/reports",
                    &json!({"reports": [
                        {"device": eid, "kind": {"type": "registration",
                            "outcome": {"result": "registered"}, "plmn": "310-410"}},
                        {"device": eid, "kind": {"type": "data_path",
                            "latency_ms": 40, "loss_permille": 0}}
                    ]}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
    }

    /// Tends the devices until the rollout is in `state`; its view.
    async fn rollout_reaches(&self, id: u64, state: &str, eids: &[String]) -> Value {
        for _ in 0..400 {
            let (_, v) = self.get(&format!("/api/v1/fleet/rollouts/{id}")).await;
            if v["state"] == state {
                return v;
            }
            assert!(
                !matches!(v["state"].as_str(), Some("halted" | "aborted")),
                "waiting for {state}: {v:#}"
            );
            self.tend(eids).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rollout {id} never {state}");
    }

    async fn command(&self, id: u64, command: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/fleet/rollouts/{id}/{command}"),
            &json!(null),
        )
        .await
    }
}

#[tokio::test]
async fn approve_pause_resume_and_abort_move_a_real_rollout() {
    let lab = Lab::start().await;
    let second = ferrosim_ids::Eid::from_body(&format!("{}7", &lab.eid[..29]))
        .unwrap()
        .to_string();
    let eids = [lab.eid.clone(), second];
    for (n, eid) in eids.iter().enumerate() {
        lab.add_converged(eid, n as u64).await;
    }
    let (s, v) = lab
        .post(
            "/api/v1/fleet/rules",
            &json!({"name": "strict", "registration_failures": {"count": 2, "window": "1m"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = lab
        .post(
            "/api/v1/fleet/rollouts",
            &json!({"name": "strict rule", "change": {"kind": "rule", "rule": "strict"},
                "waves": [50, 100], "soak": "4s", "max_wait": "10m", "manual_approval": true}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(
        (&v["state"], &v["wave_sizes"]),
        (&json!("running"), &json!([1])),
        "{v:#}"
    );

    // The canary's gate passes; the next wave waits for an approval.
    let v = lab.rollout_reaches(id, "awaiting_approval", &eids).await;
    assert_eq!(v["gates"].as_array().unwrap().len(), 1, "{v:#}");
    let (s, v) = lab.command(id, "pause").await;
    assert_eq!(s, 409, "only a running rollout pauses: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("awaiting_approval"),
        "{v}"
    );
    let (s, v) = lab.command(id, "approve").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["state"], &v["wave_sizes"]),
        (&json!("running"), &json!([1, 1])),
        "{v:#}"
    );
    let (s, _) = lab.command(id, "approve").await;
    assert_eq!(s, 409, "approved once");

    // Paused: the soak passes, good reports come, no verdict is given.
    let (s, v) = lab.command(id, "pause").await;
    assert_eq!((s, &v["state"]), (200, &json!("paused")), "{v}");
    let paused = std::time::Instant::now();
    while paused.elapsed() < Duration::from_secs(5) {
        lab.tend(&eids).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v) = lab.get(&format!("/api/v1/fleet/rollouts/{id}")).await;
    assert_eq!(
        (&v["state"], v["gates"].as_array().unwrap().len()),
        (&json!("paused"), 1),
        "{v:#}"
    );
    // Resumed: the second wave's gate is judged (its soak is over: at
    // once, possibly before the answer) and the rollout completes.
    let (s, v) = lab.command(id, "resume").await;
    assert!(
        s == 200 && (v["state"] == "running" || v["state"] == "completed"),
        "{s} {v}"
    );
    let v = lab.rollout_reaches(id, "completed", &eids).await;
    assert_eq!(v["gates"].as_array().unwrap().len(), 2, "{v:#}");
    for command in ["pause", "resume", "approve", "abort"] {
        let (s, v) = lab.command(id, command).await;
        assert_eq!(s, 409, "{command} on a completed rollout: {v}");
    }
    for eid in &eids {
        let (_, v) = lab.get(&format!("/api/v1/fleet/devices/{eid}")).await;
        assert_eq!(v["rule"], "strict", "{v:#}");
    }
    // Each command is in the decision log with the operator as its reason.
    let (_, v) = lab
        .get(&format!("/api/v1/fleet/decisions?rollout={id}"))
        .await;
    let states: Vec<(String, String)> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["what"]["decision"] == "rollout_state")
        .map(|d| {
            (
                d["what"]["state"].as_str().unwrap().to_owned(),
                d["reason"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for state in ["running", "paused"] {
        assert!(
            states.iter().any(|(s, r)| s == state && r == "operator"),
            "{state}: {states:?}"
        );
    }
    let gates = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["what"]["decision"] == "gate_pass")
        .count();
    assert_eq!(gates, 2, "{v:#}");

    // Abort: a rollout back to the default rule is stopped in its canary
    // wave and its device rolled back to the rule it had.
    let (s, v) = lab
        .post(
            "/api/v1/fleet/rollouts",
            &json!({"name": "back", "change": {"kind": "rule", "rule": "default"},
                "waves": [50, 100], "soak": "10m", "max_wait": "20m"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let back = v["id"].as_u64().unwrap();
    let (s, v) = lab.command(back, "abort").await;
    assert_eq!((s, &v["state"]), (200, &json!("aborted")), "{v}");
    let (_, v) = lab
        .get(&format!("/api/v1/fleet/decisions?rollout={back}"))
        .await;
    assert!(
        v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["what"]["decision"] == "roll_back"),
        "{v:#}"
    );
    for eid in &eids {
        let (_, v) = lab.get(&format!("/api/v1/fleet/devices/{eid}")).await;
        assert_eq!(v["rule"], "strict", "rolled back: {v:#}");
    }
    // Commands on an unknown rollout, an unknown command, and tokens that
    // may not or are not known.
    let (s, _) = lab.command(99, "pause").await;
    assert_eq!(s, 404);
    let (s, _) = lab.command(back, "launch").await;
    assert_eq!(s, 404);
    for command in ["approve", "pause", "resume", "abort"] {
        let path = format!("/api/v1/fleet/rollouts/{id}/{command}");
        let (s, v) = lab.call("POST", &path, Some(&lab.read_only), None).await;
        assert_eq!(s, 403, "{command}: {v}");
        for token in [lab.foreign.as_str(), "fsk_garbage"] {
            let (s, v) = lab.call("POST", &path, Some(token), None).await;
            assert_eq!(s, 401, "{command}: {v}");
        }
    }
}

#[tokio::test]
async fn a_fallback_restage_rollout_orders_at_the_new_fallback_through_the_driver() {
    let lab = Lab::start().await;
    let eid = lab.eid.clone();
    lab.add_converged(&eid, 0).await;
    // Carrier B offers a second version of its profile type (a change of
    // the carrier, with an admin token and its version).
    let path = "/api/v1/fleet/carriers/carrier-b";
    let (s, b, _) = lab
        .call_versioned(reqwest::Method::GET, path, &lab.read_only, None, None)
        .await;
    assert_eq!(s, 200, "{b}");
    let mut carrier = b["item"].clone();
    carrier["profile_type"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": PROFILE_TYPE, "version": 2, "apn": "iot"}));
    let (s, v, _) = lab
        .call_versioned(
            reqwest::Method::PUT,
            path,
            &lab.admin,
            Some(&carrier.to_string()),
            b["version"].as_str(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let view = format!("/api/v1/fleet/devices/{eid}");
    let fallback = |version: u16| json!(format!("carrier-b/{PROFILE_TYPE}@{version}"));
    let (_, v) = lab.get(&view).await;
    assert_eq!(v["desired_fallback"], fallback(1), "{v:#}");

    let (s, v) = lab
        .post(
            "/api/v1/fleet/rollouts",
            &json!({"name": "restage", "waves": [100], "soak": "10m", "max_wait": "20m",
                "change": {"kind": "restage_fallback",
                    "to": {"carrier": "carrier-b", "profile_type": PROFILE_TYPE, "version": 2}}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["wave_sizes"], json!([1]), "{v:#}");
    let (_, v) = lab.get(&view).await;
    assert_eq!(v["desired_fallback"], fallback(2), "{v:#}");
    // The driver orders the new fallback at B's SM-DP+ over ES2+ and
    // queues its download trigger at the eIM (once the device's agent has
    // taken its APN); nothing goes to A.
    let code = format!("1${}$", lab.b.address);
    let devices = [eid.clone()];
    wait_until("the new fallback's download trigger at the eIM", || async {
        lab.tend(&devices).await;
        lab.queue()
            .await
            .iter()
            .any(|q| q.der.windows(code.len()).any(|w| w == code.as_bytes()))
    })
    .await;
    let orders_b = ferrosim_testkit::audit::orders(&lab.b.store).await.unwrap();
    assert!(
        orders_b.values().any(|o| format!("{o:?}").contains(&eid)),
        "{orders_b:?}"
    );
    let orders_a = ferrosim_testkit::audit::orders(&lab.a.store).await.unwrap();
    assert!(orders_a.is_empty(), "{orders_a:?}");
    let (_, v) = lab
        .get(&format!("/api/v1/fleet/decisions?device={eid}"))
        .await;
    assert!(
        v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["rollout"] == id && d["what"]["command"] == "es2.downloadOrder"),
        "{v:#}"
    );
    // Aborted: the device's fallback is the one it had again.
    let (s, v) = lab.command(id, "abort").await;
    assert_eq!((s, &v["state"]), (200, &json!("aborted")), "{v}");
    let (_, v) = lab.get(&view).await;
    assert_eq!(v["desired_fallback"], fallback(1), "{v:#}");
}
