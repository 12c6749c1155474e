//! An eIM lab for the end-to-end tests of the `ferrosim ipa` CLI: a sandbox
//! SM-DP+ with a test PKI, and an eIM (ESipa, its relay to that SM-DP+ and
//! its REST API) served over loopback HTTPS, with an operator's and a
//! read-only API token; plus the REST calls and the first-eIM file the
//! tests make against it.

use std::path::{Path, PathBuf};
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
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

use super::{ok, path};

/// The DER SubjectPublicKeyInfo of a P-256 public key (what an eIM
/// configuration carries as `eimPublicKey`).
pub fn spki(key: &VerifyingKey) -> Vec<u8> {
    let mut der =
        hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").expect("SPKI prefix");
    der.extend_from_slice(&key.to_uncompressed().expect("P-256 point"));
    der
}

/// A running eIM next to a sandbox SM-DP+, both on one loopback HTTPS
/// server whose certificate names `localhost`.
pub struct EimLab {
    /// The sandbox SM-DP+ (its PKI has two eUICCs).
    pub smdp: TestSmdp,
    /// The eIM's public key (its private key signs the packages).
    pub eim_key: VerifyingKey,
    _server: RunningServer,
    /// `localhost:PORT` of the eIM.
    pub eim_address: String,
    http: reqwest::Client,
    /// An API token of operator scope.
    pub operator: String,
    /// An API token of read-only scope.
    pub reader: String,
    /// A temporary directory for the test's files.
    pub dir: tempfile::TempDir,
    /// The test CI certificate, as a PEM file in [`EimLab::dir`].
    pub ca: PathBuf,
    eim_id: String,
    association_token: i64,
}

impl EimLab {
    /// Starts the SM-DP+ and the eIM `eim_id`; eUICCs are associated with
    /// it through `association_token`.
    pub async fn start(eim_id: &str, association_token: i64) -> Self {
        let smdp = TestSmdp::start(TestSmdpOptions::default())
            .await
            .expect("sandbox SM-DP+");
        let key = SoftwareKey::generate().expect("eIM key");
        let eim_key = key.verifying_key().expect("eIM public key");
        let eim = Eim::new(
            smdp.store.clone(),
            EimConfig {
                eim_id: EimId::new(eim_id).expect("eIM id"),
                key: Arc::new(key),
                trust: smdp.pki.trust_store().expect("trust store"),
            },
        );
        let tokens = MemTokenStore::new();
        let (operator, token) = new_token("ops", Scope::Operator, &mut rand::rng(), Timestamp(1));
        tokens.insert(token);
        let (reader, token) = new_token("ro", Scope::ReadOnly, &mut rand::rng(), Timestamp(1));
        tokens.insert(token);
        let relay = SmdpRelay::new(Some(smdp.smdp.clone()), None);
        let routes = esipa::routes(eim.clone(), relay).merge(api::eim::routes(eim, tokens));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let server = ferrosim_server::start_with(
            listener,
            smdp.smdp.clone(),
            ServerOptions::new(tls_identity(&smdp.pki)),
            routes,
        )
        .await
        .expect("eIM server");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = dir.path().join("ci.pem");
        std::fs::write(&ca, smdp.ci_pem()).expect("writing the CI certificate");
        let http = smdp.https_client();
        Self {
            smdp,
            eim_key,
            _server: server,
            eim_address: format!("localhost:{port}"),
            http,
            operator,
            reader,
            dir,
            ca,
            eim_id: eim_id.to_owned(),
            association_token,
        }
    }

    /// The EID (digits) of the PKI's eUICC number `n`.
    pub fn eid(&self, n: usize) -> String {
        self.smdp.pki.euiccs[n]
            .certificate
            .eid()
            .expect("EID in the eUICC certificate")
            .digits()
    }

    /// `ferrosim euicc init` of the PKI's eUICC number `n`, its state in
    /// the file `state_file` of [`EimLab::dir`].
    pub fn euicc_init(&self, n: usize, state_file: &str) -> CliDevice {
        let device = CliDevice {
            eid: self.eid(n),
            euicc_state: self.dir.path().join(state_file),
            identity: path(&self.smdp.pki_dir).to_owned(),
        };
        ok(&[
            "euicc",
            "init",
            "--identity",
            &device.identity,
            "--eid",
            &device.eid,
            "--state",
            path(&device.euicc_state),
        ]);
        device
    }

    /// `poll --eim ADDRESS --binding BINDING --ca CI --state IPA_STATE`:
    /// the arguments of `ferrosim ipa … poll` against this eIM.
    pub fn poll_args<'a>(&'a self, binding: &'a str, ipa_state: &'a Path) -> [&'a str; 9] {
        [
            "poll",
            "--eim",
            &self.eim_address,
            "--binding",
            binding,
            "--ca",
            path(&self.ca),
            "--state",
            path(ipa_state),
        ]
    }

    /// A call to the eIM: `GET` or (any other `method`) `POST` of `path`,
    /// with the bearer `token` and the JSON text `body` when given. Returns
    /// the status and the answer as JSON (`Null` when it is not JSON).
    pub async fn call(
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
        let response = request.send().await.expect("eIM answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("eIM answer body");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// [`EimLab::call`] with the operator's token and a JSON body.
    pub async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(method, path, Some(&self.operator), body.as_deref())
            .await
    }

    /// Associates the PKI's eUICC number `n` with the eIM (counter 0, the
    /// lab's association token); returns the answer.
    pub async fn associate(&self, n: usize) -> (u16, Value) {
        let issued = &self.smdp.pki.euiccs[n];
        self.rest(
            "POST",
            "/api/v1/eim/devices",
            Some(json!({
                "eid": self.eid(n),
                "eumCertificate": self.smdp.pki.eum.certificate_pem(),
                "euiccCertificate": STANDARD.encode(issued.certificate.der()),
                "counter": 0,
                "associationToken": self.association_token,
            })),
        )
        .await
    }

    /// [`EimLab::associate`], which must be answered `201`.
    pub async fn associate_ok(&self, n: usize) {
        let (status, body) = self.associate(n).await;
        assert_eq!(status, 201, "associating eUICC {n}: {body}");
    }

    /// Queues `operation` for `eid`; returns the answer.
    pub async fn queue(&self, eid: &str, operation: Value) -> (u16, Value) {
        self.rest(
            "POST",
            &format!("/api/v1/eim/devices/{eid}/queue"),
            Some(operation),
        )
        .await
    }

    /// [`EimLab::queue`], which must be answered `201`.
    pub async fn queue_ok(&self, eid: &str, operation: Value) {
        let (status, body) = self.queue(eid, operation.clone()).await;
        assert_eq!(status, 201, "{operation}: {body}");
    }

    /// [`EimLab::queue_ok`] for each of `operations`, in order.
    pub async fn queue_all(&self, eid: &str, operations: &[Value]) {
        for operation in operations {
            self.queue_ok(eid, operation.clone()).await;
        }
    }

    /// Every result the eIM stored for `eid`.
    pub async fn results(&self, eid: &str) -> Vec<Value> {
        let (status, results) = self
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/results"), None)
            .await;
        assert_eq!(status, 200, "{results}");
        results.as_array().expect("a list of results").clone()
    }

    /// The SM-DP+'s state of the order of `iccid`.
    pub async fn order_state(&self, iccid: &str) -> OrderState {
        self.smdp
            .store
            .profile(&ferrosim_saip::Iccid::new(iccid).expect("ICCID"))
            .await
            .expect("profile lookup")
            .expect("a profile of that ICCID")
            .state
    }

    /// Writes the AddInitialEimRequest for this eIM (what `ferrosim eim
    /// bootstrap` writes) to `first-eim.der` in [`EimLab::dir`]; returns
    /// the file.
    pub fn add_initial_eim(&self) -> PathBuf {
        let config = sgp32::EimConfigurationData::new(
            self.eim_id.clone(),
            Some(self.eim_address.clone()),
            None,
            Some(Integer::from(0)),
            Some(Integer::from(self.association_token)),
            Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
                decode_der(&spki(&self.eim_key)).expect("SPKI"),
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
            encode_der(&sgp32::AddInitialEimRequest::new(vec![config])).expect("encoding"),
        )
        .expect("writing the first eIM");
        file
    }
}

/// A virtual IoT eUICC of the lab's PKI kept in a state file, as the
/// `ferrosim ipa` commands drive it.
pub struct CliDevice {
    /// Its EID (digits).
    pub eid: String,
    /// The file holding the eUICC's state.
    pub euicc_state: PathBuf,
    identity: String,
}

impl CliDevice {
    /// `--euicc-state FILE --identity DIR --eid EID`: what every `ferrosim
    /// ipa` command for this device starts with.
    pub fn args(&self) -> [&str; 6] {
        [
            "--euicc-state",
            path(&self.euicc_state),
            "--identity",
            &self.identity,
            "--eid",
            &self.eid,
        ]
    }

    /// `ferrosim ipa … add-initial-eim --file FILE`, which must succeed;
    /// returns its standard output.
    pub fn add_initial_eim(&self, file: &Path) -> String {
        let mut args = vec!["ipa"];
        args.extend(self.args());
        args.extend(["add-initial-eim", "--file", path(file)]);
        ok(&args)
    }
}
