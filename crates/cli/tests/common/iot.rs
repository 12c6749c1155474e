//! Virtual IoT devices for the multi-process eIM tests: a virtual IoT eUICC
//! with two profiles (P1 enabled, P2 disabled) given the eIM of `serve` as
//! its first eIM, and the real IPA (`ferrosim-ipa`) polling that eIM over
//! loopback HTTPS, one package per session, keeping a log of every package
//! the eUICC ran. Also the operator's side: an API token, the eIM's
//! AddInitialEim, associations and queued packages over the REST API.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ferrosim_asn1::rasn::types::FixedOctetString;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_euicc::profile::PolicyRules;
use ferrosim_euicc::{
    EuiccIdentity, EuiccState, InstalledProfile, ProfileClass, ProfileState, VirtualEuicc,
};
use ferrosim_ids::{Eid, Iccid, Timestamp};
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::{EsipaClient, MemoryStore, run_session};
use ferrosim_ipa::{
    Backoff, Binding, EimReply, EsipaError, EsipaRequest, Ipa, IpaConfig, ItemReport,
    PackageOutcome, PendingState,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::{Es9Request, Es9Response};
use ferrosim_lpa::{Es10, Es10Options, Transport, TransportError};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::FERROSIM;

/// The association token the devices' eUICCs are given for the eIM.
pub const ASSOCIATION_TOKEN: i64 = 7;
/// Sessions a device may take in all (a bound, not a timing).
pub const MAX_SESSIONS: usize = 1_000;

/// The profile enabled at the start.
pub fn p1() -> Iccid {
    Iccid::from_body("894400000000000001").unwrap()
}

/// The profile disabled at the start.
pub fn p2() -> Iccid {
    Iccid::from_body("894400000000000002").unwrap()
}

/// A profile as the eUICC keeps it after an installation (metadata
/// without notification addresses: enabling and disabling leave no
/// notification to deliver).
fn installed(iccid: &Iccid, n: u8, enabled: bool) -> InstalledProfile {
    let metadata = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        "ferrosim test".into(),
        format!("profile {n}"),
        None,
        None,
        ProfileClass::Operational.to_asn1(),
        None,
        None,
        None,
        None,
        None,
    );
    let mut isdp_aid = [0u8; 16];
    isdp_aid[..9].copy_from_slice(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF]);
    isdp_aid[15] = n;
    InstalledProfile {
        iccid: iccid.clone(),
        isdp_aid,
        state: if enabled {
            ProfileState::Enabled
        } else {
            ProfileState::Disabled
        },
        nickname: None,
        profile_class: ProfileClass::Operational,
        policy_rules: PolicyRules::default(),
        metadata_der: encode_der(&metadata).unwrap().into_boxed_slice(),
        dp_oid: None,
        smdp_address: "smdp.test.invalid".to_owned(),
        smdp_oid: "2.999.10".to_owned(),
        imsi: None,
        aka_algorithm: None,
        k: None,
        opc: None,
        pins: Vec::new(),
        puks: Vec::new(),
        spn: None,
        apn: None,
        package_len: 0,
        package_sha256: [0; 32],
        installed_at: ferrosim_ids::Timestamp::EPOCH,
    }
}

/// The virtual eUICC as the IPA's APDU transport.
pub struct Card(pub VirtualEuicc);

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.0.handle_apdu(command, SystemTime::now()))
    }
}

/// The eIM as a device reaches it: one or several `serve` instances over
/// HTTPS, each ESipa call to the next instance in turn; the results the
/// eIM acknowledged are counted (shared by all devices).
#[derive(Clone)]
pub struct Eims {
    instances: Arc<Vec<HttpsEsipa>>,
    next: Arc<AtomicUsize>,
    /// Results acknowledged so far.
    pub acknowledged: Arc<AtomicUsize>,
}

impl Eims {
    /// Clients of the instances at `addresses` (`host:port`), trusting the
    /// CI `ci_pem`, speaking `binding`; calls start at instance `first`.
    pub fn new(
        addresses: &[String],
        binding: Binding,
        ci_pem: &str,
        first: usize,
        acknowledged: Arc<AtomicUsize>,
    ) -> Self {
        let roots = TlsTrust::roots_from_bytes(ci_pem.as_bytes()).unwrap();
        let instances = addresses
            .iter()
            .map(|a| {
                HttpsEsipa::new(
                    a,
                    binding,
                    &TlsTrust::Roots(roots.clone()),
                    Duration::from_secs(30),
                )
                .unwrap()
            })
            .collect();
        Self {
            instances: Arc::new(instances),
            next: Arc::new(AtomicUsize::new(first)),
            acknowledged,
        }
    }

    fn pick(&self) -> &HttpsEsipa {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.instances[n % self.instances.len()]
    }
}

impl EsipaClient for Eims {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        let reply = self.pick().send(request).await;
        if let Ok(EimReply::Acknowledged(seqs)) = &reply {
            self.acknowledged.fetch_add(seqs.len(), Ordering::SeqCst);
        }
        reply
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        self.pick().relay(request).await
    }
}

/// An ES9+ client for direct downloads (no test here triggers one).
pub fn direct_client(ci_pem: &str) -> HttpsEs9Client {
    let roots = TlsTrust::roots_from_bytes(ci_pem.as_bytes()).unwrap();
    HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap()
}

/// One virtual IoT device and what its IPA saw.
pub struct IotDevice {
    /// The EID.
    pub eid: Eid,
    es10: Es10<Card>,
    /// The IPA.
    pub ipa: Ipa<StdRng>,
    state: MemoryStore,
    /// Every package the eUICC answered, in the order it ran them:
    /// (counter value, outcome).
    pub runs: Vec<(u64, PackageOutcome)>,
    /// Sessions that ended with an error (the eIM away, or busy).
    pub failed_sessions: usize,
    /// Sessions in all.
    pub sessions: usize,
    /// ProvideEimPackageResult calls made (a result sent again counts again).
    pub results_sent: usize,
}

impl IotDevice {
    /// The eUICC `identity` with P1 and P2, given its first eIM by the
    /// AddInitialEim request `add_initial_eim`, and an IPA that runs one
    /// package per session and backs off briefly.
    pub fn new(identity: EuiccIdentity, add_initial_eim: &[u8]) -> Self {
        let eid = *identity.eid();
        let state = EuiccState {
            profiles: vec![installed(&p1(), 1, true), installed(&p2(), 2, false)],
            ..EuiccState::default()
        };
        let mut es10 = Es10::open(
            Card(VirtualEuicc::new(identity, state)),
            &Es10Options::default(),
        )
        .unwrap();
        let answer: sgp32::AddInitialEimResponse =
            decode_der(&es10.transmit_es10(add_initial_eim).unwrap()).unwrap();
        assert!(
            matches!(answer, sgp32::AddInitialEimResponse::addInitialEimOk(_)),
            "{answer:?}"
        );
        let config = IpaConfig {
            eid: Some(eid),
            deliver_notifications: false,
            max_items_per_session: 1,
            backoff: Backoff {
                first: Duration::from_millis(100),
                max: Duration::from_millis(800),
            },
            ..IpaConfig::default()
        };
        let ipa = Ipa::new(
            config,
            es10.link(),
            PendingState::default(),
            StdRng::from_rng(&mut rand::rng()),
            Timestamp::now(),
        );
        Self {
            eid,
            es10,
            ipa,
            state: MemoryStore::default(),
            runs: Vec::new(),
            failed_sessions: 0,
            sessions: 0,
            results_sent: 0,
        }
    }

    /// Polls until, once `more_coming` is false, a session finds nothing to
    /// run and nothing pending; waits out the IPA's backoff after a failed
    /// session.
    pub async fn run(
        mut self,
        eim: Eims,
        direct: HttpsEs9Client,
        more_coming: Arc<AtomicBool>,
    ) -> Self {
        loop {
            assert!(
                self.sessions < MAX_SESSIONS,
                "{}: still polling after {MAX_SESSIONS} sessions",
                self.eid
            );
            let last_call = !more_coming.load(Ordering::SeqCst);
            let report = run_session(
                &mut self.ipa,
                self.es10.transport_mut(),
                &eim,
                &direct,
                &mut self.state,
            )
            .await
            .unwrap();
            self.sessions += 1;
            self.results_sent += report.results_sent;
            for item in &report.items {
                match item {
                    ItemReport::Package {
                        counter: Some(counter),
                        outcome,
                    } => self.runs.push((*counter, outcome.clone())),
                    other => panic!("{}: unexpected item {other:?}", self.eid),
                }
            }
            assert!(report.abandoned.is_empty(), "{}: {report:?}", self.eid);
            if report.error.is_some() {
                self.failed_sessions += 1;
                tokio::time::sleep(self.ipa.next_session().since(Timestamp::now())).await;
                continue;
            }
            if report.items.is_empty() && report.pending == 0 {
                if last_call {
                    return self;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The eUICC's state.
    pub fn card(&mut self) -> &EuiccState {
        self.es10.transport_mut().0.state()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `ferrosim ARGS INSTANCE...`; its stdout (fails the test otherwise).
pub fn ferrosim_ok(instance: &[String], args: &[&str]) -> String {
    let out = ferrosim_command(FERROSIM)
        .args(args)
        .args(instance)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An operator API token of the instance (`ferrosim api-token create`).
pub fn operator_token(instance: &[String]) -> String {
    ferrosim_ok(
        instance,
        &[
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ],
    )
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_owned()
}

/// The instance eIM's AddInitialEim request (`ferrosim eim bootstrap`, with
/// [`ASSOCIATION_TOKEN`]), written into `dir`.
pub fn add_initial_eim(instance: &[String], dir: &Path) -> Vec<u8> {
    let file = dir.join("first-eim.der");
    ferrosim_ok(
        instance,
        &[
            "eim",
            "bootstrap",
            "--out",
            path(&file),
            "--association-token",
            &ASSOCIATION_TOKEN.to_string(),
        ],
    );
    std::fs::read(&file).unwrap()
}

/// The operator's REST client of one instance (`base`: `https://...`).
#[derive(Clone)]
pub struct Operator {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Operator {
    /// A client trusting the CI `ci_pem`.
    pub fn new(base: &str, token: &str, ci_pem: &str) -> Self {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Associates the device of eUICC certificate `euicc_pem` (counter 0,
    /// [`ASSOCIATION_TOKEN`]).
    pub async fn associate(&self, eid: &Eid, eum_pem: &str, euicc_pem: &str) {
        let body = json!({
            "eid": eid.to_string(),
            "eumCertificate": eum_pem,
            "euiccCertificate": euicc_pem,
            "associationToken": ASSOCIATION_TOKEN,
        });
        let (status, answer) = self.post("/api/v1/eim/devices", &body).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// Queues `operation` (a REST body) for `eid`; the counter value it
    /// got, and how many times the device changed concurrently too often
    /// (`409`) before it was queued.
    pub async fn queue(&self, eid: &Eid, operation: &Value) -> (u32, usize) {
        let mut conflicts = 0;
        loop {
            let (status, answer) = self
                .post(&format!("/api/v1/eim/devices/{eid}/queue"), operation)
                .await;
            match status {
                201 => {
                    let counter = answer["counter"].as_u64().expect("a counter");
                    return (u32::try_from(counter).unwrap(), conflicts);
                }
                409 if conflicts < 100 => conflicts += 1,
                _ => panic!("queuing {operation} for {eid}: {status} {answer}"),
            }
        }
    }
}
