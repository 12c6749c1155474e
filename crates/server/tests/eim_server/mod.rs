//! The eIM in the server over loopback HTTPS, started as the eIM tests of
//! this crate need it: a fresh test PKI naming `localhost`, a SQLite store
//! in a temporary directory, the SM-DP+ and the eIM (no relay) on one
//! listener on 127.0.0.1 port 0, ESipa and the eIM's REST API with the
//! tokens the test made; and an HTTPS client trusting the test CI.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrosim_crypto::SoftwareKey;
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_eim::relay::NoRelay;
use ferrosim_eim::{Eim, EimConfig, EimId};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_server::api::auth::MemTokenStore;
use ferrosim_server::sandbox::{smdp_config, tls_identity};
use ferrosim_server::{RunningServer, ServerOptions, api, esipa};
use ferrosim_smdp::Smdp;
use ferrosim_store::{SqlStore, StoreOptions};
use serde_json::{Value, json};

/// The counter the tests associate eUICCs with ([`EimServer::association`]).
pub const COUNTER: i64 = 10;
/// The association token the tests associate eUICCs with.
pub const ASSOCIATION_TOKEN: i64 = 0x42;

/// A running eIM (and SM-DP+) on loopback HTTPS.
pub struct EimServer {
    /// The test PKI the server and its eUICCs come from.
    pub pki: TestPki,
    /// The eIM's public key (what its packages are verified with).
    pub eim_key: VerifyingKey,
    /// The server; shut it down to see the eIM stop.
    pub server: RunningServer,
    /// `https://localhost:PORT`.
    pub base: String,
    /// An HTTPS client trusting the test CI.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl EimServer {
    /// Starts the eIM `eim_id` with a PKI of `euicc_count` eUICCs; its REST
    /// API accepts the tokens of `tokens`; `extra` routes are served too
    /// (`Router::new()` for none).
    pub async fn start(
        euicc_count: usize,
        eim_id: &str,
        tokens: MemTokenStore,
        extra: Router,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pki = TestPki::generate(&TestPkiOptions {
            euicc_count,
            smdp_address: "localhost".into(),
            ..TestPkiOptions::default()
        })
        .expect("test PKI");
        let store = SqlStore::connect(
            &format!("sqlite:{}", dir.path().join("eim.db").display()),
            &StoreOptions::default(),
        )
        .await
        .expect("SQLite store");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let address = format!("localhost:{port}");
        let smdp = Smdp::new(
            smdp_config(&pki, &address, None).expect("SM-DP+ configuration"),
            store.clone(),
        );
        let key = SoftwareKey::generate().expect("eIM key");
        let eim_key = key.verifying_key().expect("eIM public key");
        let eim = Eim::new(
            store.clone(),
            EimConfig {
                eim_id: EimId::new(eim_id).expect("eIM id"),
                key: Arc::new(key),
                trust: pki.trust_store().expect("trust store"),
            },
        );
        let routes = esipa::routes(eim.clone(), NoRelay)
            .merge(api::eim::routes(eim, tokens))
            .merge(extra);
        let server = ferrosim_server::start_with(
            listener,
            smdp,
            ServerOptions::new(tls_identity(&pki)),
            routes,
        )
        .await
        .expect("server start");
        let ci = reqwest::Certificate::from_pem(pki.ci.certificate_pem().as_bytes())
            .expect("CI certificate");
        let http = reqwest::Client::builder()
            .tls_certs_only([ci])
            .build()
            .expect("HTTPS client");
        Self {
            pki,
            eim_key,
            server,
            base: format!("https://{address}"),
            http,
            _dir: dir,
        }
    }

    /// A REST call: `method` (GET, POST, PUT or DELETE) of `path`, with
    /// the bearer `token` and the JSON `body` when given. Returns the
    /// status and the answer as JSON (`Null` when it is not JSON).
    pub async fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "DELETE" => self.http.delete(url),
            other => panic!("{other}"),
        };
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("server answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("answer body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The body that associates the PKI's eUICC number `n` with the eIM
    /// ([`COUNTER`], [`ASSOCIATION_TOKEN`]).
    pub fn association(&self, n: usize) -> Value {
        let issued = &self.pki.euiccs[n];
        json!({
            "eid": issued.certificate.eid().expect("EID").digits(),
            "eumCertificate": self.pki.eum.certificate_pem(),
            "euiccCertificate": STANDARD.encode(issued.certificate.der()),
            "counter": COUNTER,
            "associationToken": ASSOCIATION_TOKEN,
        })
    }
}
