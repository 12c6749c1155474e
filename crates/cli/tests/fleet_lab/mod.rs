//! A fleet lab with the real components of `ferrosim serve`: one HTTPS
//! server with the SM-DP+ (two operators, carrier A and carrier B, each
//! with its ES2+ token and profile type), the eIM (ESipa) and the fleet
//! REST API, the fleet driver over the SQLite store; IoT devices, each a
//! virtual eUICC driven by the real IPA over loopback HTTPS ESipa (direct
//! ES9+ downloads) with a device agent taking its APN settings from the
//! fleet API, and a network model for their connectivity reports (data
//! flows only with the carrier's real APN).
//!
//! Only the fleet's clock is virtual (a manual clock the test advances), so
//! per-minute limits, dwell and soak times take seconds of real time.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test crates

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_crypto::SoftwareKey;
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_eim::{AssociationRequest, Counter, Eim, EimConfig, EimId};
use ferrosim_euicc::{EuiccIdentity, EuiccState, ProfileState, VirtualEuicc};
use ferrosim_fleet::FleetConfig;
use ferrosim_ids::{Clock, Eid, ManualClock, Timestamp};
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::{MemoryStore, run_session};
use ferrosim_ipa::{
    Action as IpaAction, Binding, DownloadPath, Ipa, IpaConfig, ItemReport, LocalOperation,
    PendingState,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{Es10, Es10Options};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::audit::Auditor;
use ferrosim_server::es2_client::Es2Client;
use ferrosim_server::fleet::{FleetDriver, FleetOptions};
use ferrosim_server::relay::SmdpRelay;
use ferrosim_server::sandbox::{TS48_PACKAGE, smdp_config, tls_identity};
use ferrosim_server::{RunningServer, ServerOptions, api, esipa};
use ferrosim_smdp::Smdp;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileRange, ProfileTypeImport};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_store::{SqlFleetStore, SqlStore, StoreOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Profiles each carrier has on the SM-DP+.
pub const PROFILES_PER_CARRIER: u64 = 12;
pub const EIM_ID: &str = "eim.fleet-failover.test";
pub const ASSOCIATION_TOKEN: i64 = 11;
/// The rule's limit: at most half of the devices staged on B switch onto
/// it per minute (two of four: one every 30 s).
pub const FRACTION_PER_MINUTE: f64 = 0.5;
pub const JITTER: Duration = Duration::from_secs(1);
pub const RETURN_DWELL: Duration = Duration::from_secs(300);
pub const MIN_ON_FALLBACK: Duration = Duration::from_secs(120);
/// Virtual time between two looks during the failover.
pub const STEP: Duration = Duration::from_secs(5);

/// ICCID prefix of carrier A's profiles (B's start with 894410).
/// The APN carrier A's network serves, and a mistyped one it does not.
pub const A_APN: &str = "iot.carrier-a.example";
pub const A_TYPO_APN: &str = "iot.carrier-a.exmaple";
/// The APN carrier B's network serves.
pub const B_APN: &str = "m2m.carrier-b.example";
pub const A_ICCIDS: &str = "894400";
pub const B_ICCIDS: &str = "894410";

pub fn fleet_toml(address: &str) -> String {
    fleet_toml_with(address, "eim_enable_with_rollback")
}

/// The fleet's configuration with the failover rule switching by `method`
/// (`eim_enable_with_rollback` or `device_local`).
pub fn fleet_toml_with(address: &str, method: &str) -> String {
    format!(
        r#"
regions = ["north"]
# Retries of actions that failed while a server restarted come soon.
[reconciler]
retry_base = "1s"
retry_max = "4s"
[outage_detection]
enabled = false
[[carrier]]
name = "carrier-a"
mcc_mnc = ["310-410"]
smdp_address = "{address}"
es2_credentials = "file:carrier-a.toml"
smdp_is_ferrosim = true
fallback_carriers = ["carrier-b"]
[[carrier.apn]]
name = "iot"
apn = "iot.carrier-a.example"
[[carrier.apn]]
name = "iot-typo"
apn = "{A_TYPO_APN}"
[[carrier.profile_type]]
name = "iot-a"
apn = "iot"
# Version 2 ships with a mistyped APN: devices register, data does not flow.
[[carrier.profile_type]]
name = "iot-a"
version = 2
apn = "iot-typo"
[[carrier.profile_type]]
name = "iot-a"
version = 3
apn = "iot"
[[carrier]]
name = "carrier-b"
mcc_mnc = ["234-15"]
smdp_address = "{address}"
es2_credentials = "file:carrier-b.toml"
smdp_is_ferrosim = true
fallback_carriers = ["carrier-a"]
[[carrier.apn]]
name = "iot"
apn = "m2m.carrier-b.example"
[[carrier.profile_type]]
name = "iot-b"
apn = "iot"
fallback_allowed = true
[[group]]
name = "meters"
rule = "failover"
primary = {{ carrier = "carrier-a", profile_type = "iot-a", version = 1 }}
fallback = {{ carrier = "carrier-b", profile_type = "iot-b", version = 1 }}
[[rule]]
name = "failover"
registration_failures = {{ count = 3, window = "5m" }}
return_dwell = "{dwell}s"
min_on_fallback = "{min}s"
max_switches_per_hour = 4
max_fraction_per_minute = {FRACTION_PER_MINUTE}
jitter = "{jitter}s"
method = "{method}"
"#,
        dwell = RETURN_DWELL.as_secs(),
        min = MIN_ON_FALLBACK.as_secs(),
        jitter = JITTER.as_secs(),
    )
}

/// One operator on the SM-DP+ with its profile type and profiles; its
/// ES2+ token. The type allows the SGP.32 fallback attribute (its
/// profiles' metadata carries `fallbackAllowed`), as the fleet's
/// configuration says of it.
pub async fn seed_operator(
    store: &SqlStore,
    name: &str,
    profile_type: &str,
    first: &str,
) -> String {
    seed_operator_with(store, name, profile_type, first, true).await
}

/// Like [`seed_operator`], the profile type allowing the fallback
/// attribute only when `fallback_allowed`.
pub async fn seed_operator_with(
    store: &SqlStore,
    name: &str,
    profile_type: &str,
    first: &str,
    fallback_allowed: bool,
) -> String {
    let op = OperatorId::new(name).unwrap();
    let token = inventory::add_operator(store, op.clone(), name.into(), None, &mut rand::rng())
        .await
        .unwrap();
    inventory::import_profile_type(
        store,
        ProfileTypeImport {
            operator: op.clone(),
            name: profile_type.into(),
            package: TS48_PACKAGE.to_vec(),
            service_provider_name: Some(name.into()),
            profile_name: Some(profile_type.into()),
            profile_class: ProfileClass::Operational,
            policy_rules: PolicyRules::default(),
            owner_mcc_mnc: None,
            fallback_allowed,
        },
        ferrosim_smdp::time::Timestamp::now(),
    )
    .await
    .unwrap();
    inventory::generate_profiles(
        store,
        &op,
        profile_type,
        &ProfileRange {
            count: PROFILES_PER_CARRIER,
            first_iccid: Iccid::from_body(&format!("{first}000000000001")).unwrap(),
            first_imsi: Imsi::with_mnc_len(&format!("00101{}00000001", &first[4..]), 2).unwrap(),
        },
        &mut rand::rng(),
        ferrosim_smdp::time::Timestamp::now(),
    )
    .await
    .unwrap();
    token
}

/// The AddInitialEimRequest installing the test's eIM (counter 0, token).
fn add_initial_eim(eim_key: &VerifyingKey, address: &str) -> Vec<u8> {
    let point = eim_key.to_uncompressed().unwrap();
    let mut spki = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    spki.extend_from_slice(&point);
    let config = sgp32::EimConfigurationData::new(
        EIM_ID.into(),
        Some(address.into()),
        None,
        Some(Integer::from(0)),
        Some(Integer::from(ASSOCIATION_TOKEN)),
        Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
            decode_der(&spki).unwrap(),
        )),
        None,
        None,
        None,
        None,
        None,
    );
    encode_der(&sgp32::AddInitialEimRequest::new(vec![config])).unwrap()
}

/// Runs one ES10 command on the card over a channel of its own.
fn es10(card: &mut VirtualEuicc, command: &[u8]) -> Vec<u8> {
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let answer = es10.transmit_es10(command).unwrap();
    let _ = es10.close();
    answer
}

/// A device: its eUICC, and the APNs its agent was given.
#[derive(Clone)]
pub struct Device {
    pub eid: Eid,
    pub card: Arc<Mutex<VirtualEuicc>>,
    pub apns: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Device {
    /// ICCID of the enabled profile and of the one with the fallback
    /// attribute, read from the eUICC.
    pub async fn profiles(&self) -> (Option<String>, Option<String>) {
        let card = self.card.lock().await;
        let state = card.state();
        let enabled = state
            .profiles
            .iter()
            .find(|p| p.state == ProfileState::Enabled)
            .map(|p| p.iccid.to_string());
        let fallback = state
            .switching
            .as_ref()
            .and_then(|s| s.fallback.as_ref())
            .map(ToString::to_string);
        (enabled, fallback)
    }

    /// ICCIDs of every profile on the eUICC.
    pub async fn installed(&self) -> Vec<String> {
        let card = self.card.lock().await;
        card.state()
            .profiles
            .iter()
            .map(|p| p.iccid.to_string())
            .collect()
    }

    pub async fn enabled_on(&self, prefix: &str) -> bool {
        self.profiles()
            .await
            .0
            .is_some_and(|i| i.starts_with(prefix))
    }
}

pub struct Lab {
    /// The fleet's clock and driver when the lab runs them in the process
    /// (`None` against a `ferrosim serve` process, on real time).
    pub clock: Option<ManualClock>,
    pub driver: Option<FleetDriver<SqlFleetStore, SqlStore>>,
    /// The audit trail the in-process fleet records its decisions in (in
    /// the instance's database).
    pub audit: Option<(Auditor, SqlStore)>,
    pub devices: Vec<Device>,
    pub base: String,
    pub http: reqwest::Client,
    pub operator: String,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _server: Option<RunningServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Lab {
    pub async fn start(count: usize) -> Self {
        Self::start_with(count, true).await
    }

    /// A lab whose carrier B profile type allows the fallback attribute
    /// at the SM-DP+ (`fallbackAllowed` in its metadata) only when
    /// `b_fallback_allowed`; the fleet's configuration says it does.
    pub async fn start_with(count: usize, b_fallback_allowed: bool) -> Self {
        Self::start_opts(count, b_fallback_allowed, "eim_enable_with_rollback").await
    }

    /// A lab whose failover rule switches devices by `method`.
    pub async fn start_opts(count: usize, b_fallback_allowed: bool, method: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(&TestPkiOptions {
            euicc_count: count,
            smdp_address: "localhost".into(),
            ..TestPkiOptions::default()
        })
        .unwrap();
        let pki_dir = dir.path().join("pki");
        pki.write_to(&pki_dir).unwrap();
        let ci_pem = pki.ci.certificate_pem();
        let store = SqlStore::connect(
            &format!("sqlite:{}", dir.path().join("ferrosim.db").display()),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        let token_a = seed_operator(&store, "carrier-a", "iot-a", A_ICCIDS).await;
        let token_b =
            seed_operator_with(&store, "carrier-b", "iot-b", B_ICCIDS, b_fallback_allowed).await;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("localhost:{}", listener.local_addr().unwrap().port());
        let base = format!("https://{address}");
        let smdp = Smdp::new(smdp_config(&pki, &address, None).unwrap(), store.clone());
        let key = SoftwareKey::generate().unwrap();
        let eim_key = key.verifying_key().unwrap();
        let eim = Eim::new(
            store.clone(),
            EimConfig {
                eim_id: EimId::new(EIM_ID).unwrap(),
                key: Arc::new(key),
                trust: pki.trust_store().unwrap(),
            },
        );

        let clock = ManualClock::new(Timestamp::now());
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let auditor = Auditor::start(Arc::new(store.clone()));
        let es2 = |operator: &str, token: &str| {
            Es2Client::new(&base, operator, token, ci_pem.as_bytes()).unwrap()
        };
        let driver = FleetDriver::open(
            store.fleet(),
            Some(eim.clone()),
            FleetConfig::from_toml(&fleet_toml_with(&address, method)).unwrap(),
            ferrosim_telemetry::Dictionary::new(),
            shared,
            FleetOptions {
                tick: Duration::from_millis(50),
                es2: HashMap::from([
                    ("carrier-a".into(), es2("carrier-a", &token_a)),
                    ("carrier-b".into(), es2("carrier-b", &token_b)),
                ]),
                audit: auditor.clone(),
                ..FleetOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        std::mem::forget(stop_tx);
        driver.spawn(stop_rx);

        let tokens = MemTokenStore::new();
        let (operator, t) = new_token("ops", Scope::Operator, &mut rand::rng(), Timestamp(1));
        tokens.insert(t);
        let relay = SmdpRelay::new(Some(smdp.clone()), None);
        let routes = esipa::routes(eim.clone(), relay)
            .merge(api::fleet::routes(driver.clone(), tokens))
            .merge(api::openapi_route());
        let server = ferrosim_server::start_with(
            listener,
            smdp,
            ServerOptions::new(tls_identity(&pki)),
            routes,
        )
        .await
        .unwrap();
        let ci = reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ci])
            .build()
            .unwrap();

        // The devices: eUICCs of the PKI holding the eIM (AddInitialEim),
        // associated with it.
        let mut devices = Vec::new();
        for n in 0..count {
            let eid = pki.euiccs[n].certificate.eid().unwrap();
            let identity = EuiccIdentity::load_from_dir(&pki_dir, Some(&eid.digits())).unwrap();
            let mut card = VirtualEuicc::new(identity, EuiccState::default());
            let answer = es10(&mut card, &add_initial_eim(&eim_key, &address));
            assert_eq!(&answer[..2], &[0xBF, 0x57], "AddInitialEim: {answer:02X?}");
            eim.associate(
                AssociationRequest {
                    eid,
                    eum_certificate: pki.eum.certificate.der().to_vec(),
                    euicc_certificate: pki.euiccs[n].certificate.der().to_vec(),
                    counter: Counter::new(0).unwrap(),
                    association_token: Some(ASSOCIATION_TOKEN),
                    euicc_version: ferrosim_asn1::esipa::Sgp32Version::V1_2,
                    emulated: false,
                },
                ferrosim_eim::Timestamp::now(),
            )
            .await
            .unwrap();
            devices.push(Device {
                eid,
                card: Arc::new(Mutex::new(card)),
                apns: Arc::default(),
            });
        }
        let mut lab = Self {
            clock: Some(clock),
            driver: Some(driver),
            audit: Some((auditor, store.clone())),
            devices,
            base,
            http,
            operator,
            stop: Arc::default(),
            tasks: Vec::new(),
            _server: Some(server),
            _dir: Some(dir),
        };
        lab.spawn_devices(&address, &ci_pem);
        lab
    }

    /// A lab of devices against a running server at `address` (a
    /// `ferrosim serve` process) whose eIM each device was associated with:
    /// eUICCs `eids` of the PKI in `pki_dir`, given the AddInitialEim
    /// request `add_initial_eim`; `operator` is a fleet API token.
    pub fn attach(
        address: &str,
        ci_pem: &str,
        operator: &str,
        pki_dir: &std::path::Path,
        eids: &[Eid],
        add_initial_eim: &[u8],
    ) -> Self {
        let ci = reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ci])
            .build()
            .unwrap();
        let devices = eids
            .iter()
            .map(|eid| {
                let identity = EuiccIdentity::load_from_dir(pki_dir, Some(&eid.digits())).unwrap();
                let mut card = VirtualEuicc::new(identity, EuiccState::default());
                let answer = es10(&mut card, add_initial_eim);
                assert_eq!(&answer[..2], &[0xBF, 0x57], "AddInitialEim: {answer:02X?}");
                Device {
                    eid: *eid,
                    card: Arc::new(Mutex::new(card)),
                    apns: Arc::default(),
                }
            })
            .collect();
        let mut lab = Self {
            clock: None,
            driver: None,
            audit: None,
            devices,
            base: format!("https://{address}"),
            http,
            operator: operator.to_owned(),
            stop: Arc::default(),
            tasks: Vec::new(),
            _server: None,
            _dir: None,
        };
        lab.spawn_devices(address, ci_pem);
        lab
    }

    /// Starts every device's software (IPA sessions, agent).
    fn spawn_devices(&mut self, address: &str, ci_pem: &str) {
        let trust = TlsTrust::Roots(TlsTrust::roots_from_bytes(ci_pem.as_bytes()).unwrap());
        let esipa =
            HttpsEsipa::new(address, Binding::Asn1, &trust, Duration::from_secs(20)).unwrap();
        let direct = HttpsEs9Client::new(&HttpsOptions::new(trust)).unwrap();
        for (n, device) in self.devices.clone().into_iter().enumerate() {
            let task = tokio::spawn(device_loop(
                n as u64,
                device,
                esipa.clone(),
                direct.clone(),
                self.http.clone(),
                self.base.clone(),
                self.operator.clone(),
                self.stop.clone(),
            ));
            self.tasks.push(task);
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        }
        .bearer_auth(&self.operator);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every decision so far, oldest first.
    pub async fn decisions(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/api/v1/fleet/decisions?limit=1000&after={after}");
            let (s, v) = self.call("GET", &path, None).await;
            assert_eq!(s, 200, "{v}");
            let page = v["decisions"].as_array().unwrap().clone();
            let full = page.len() == 1000;
            if let Some(last) = page.last().and_then(|d| d["seq"].as_u64()) {
                after = last;
            }
            out.extend(page);
            if !full {
                return out;
            }
        }
    }

    /// Times (ms, virtual) of switch decisions, per device, failovers
    /// (`true`) or returns.
    pub async fn switches(&self, failover: bool) -> BTreeMap<String, Vec<i64>> {
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for d in self.decisions().await {
            if d["what"]["decision"] == "switch" && d["what"]["failover"] == failover {
                out.entry(d["device"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(d["at"].as_i64().unwrap());
            }
        }
        out
    }

    pub async fn on(&self, prefix: &str) -> usize {
        let mut n = 0;
        for d in &self.devices {
            if d.enabled_on(prefix).await {
                n += 1;
            }
        }
        n
    }

    /// Advances the fleet's clock and lets the driver poll (against a
    /// server process: lets 150 ms of real time pass).
    pub async fn advance(&self, by: Duration) -> Timestamp {
        let now = match &self.clock {
            Some(clock) => clock.advance(by),
            None => Timestamp::now(),
        };
        self.wake();
        tokio::time::sleep(Duration::from_millis(150)).await;
        now
    }

    fn wake(&self) {
        if let Some(d) = &self.driver {
            d.wake();
        }
    }

    /// Waits (real time) until the eUICCs carry out every switch the fleet
    /// decided (`failover` switches land on B, returns on A).
    pub async fn settle(&self, failover: bool) {
        for _ in 0..400 {
            let decided: usize = self.switches(failover).await.values().map(Vec::len).sum();
            let on = self.on(if failover { B_ICCIDS } else { A_ICCIDS }).await;
            if on >= decided {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the devices did not carry out the fleet's switches");
    }

    /// Waits (real time) until every device's agent was last given `apn`.
    pub async fn wait_apn(&self, apn: &str) {
        for _ in 0..400 {
            if self
                .devices
                .iter()
                .all(|d| d.apns.lock().unwrap().last().map(String::as_str) == Some(apn))
            {
                return;
            }
            self.wake();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got: Vec<Vec<String>> = self
            .devices
            .iter()
            .map(|d| d.apns.lock().unwrap().clone())
            .collect();
        panic!("the agents were not all given {apn}: {got:?}");
    }

    /// Waits (real time) until no device has an action in flight: what the
    /// fleet asked of the SM-DP+, the eIM and the devices is done before
    /// its clock moves on.
    pub async fn quiesce(&self) {
        for _ in 0..400 {
            let (s, v) = self
                .call("GET", "/api/v1/fleet/devices?limit=1000", None)
                .await;
            assert_eq!(s, 200, "{v}");
            if v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["in_flight"].is_null())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("actions still in flight");
    }

    /// Registers every device in group `meters` and waits until each has
    /// its primary on A enabled, its fallback on B installed (disabled),
    /// and its agent A's APN.
    pub async fn register_and_converge(&self) {
        self.register_and_converge_with(false).await;
    }

    /// Like [`Self::register_and_converge`], the devices registered as
    /// `fallbackSupported` when `fallback_supported`: the fleet then also
    /// gives each staged fallback on B the fallback attribute, which the
    /// eUICC accepts because the SM-DP+ wrote `fallbackAllowed` into the
    /// profile's metadata.
    pub async fn register_and_converge_with(&self, fallback_supported: bool) {
        self.register(fallback_supported).await;
        self.converge(fallback_supported).await;
    }

    /// Registers every device in group `meters` (SGP.32 1.2.0, with the
    /// Fallback Mechanism when `fallback_supported`).
    pub async fn register(&self, fallback_supported: bool) {
        for d in &self.devices {
            let (s, v) = self
                .call(
                    "POST",
                    "/api/v1/fleet/devices",
                    Some(json!({
                        "eid": d.eid.to_string(), "group": "meters", "vendor": "acme",
                        "model": "m1", "firmware": "1.0.0", "region": "north",
                        "capabilities": {"sgp32_version": [1, 2, 0],
                            "fallback_supported": fallback_supported}
                    })),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
    }

    /// Waits until every device has its primary on A enabled, its
    /// fallback on B installed (disabled; with the fallback attribute when
    /// `with_attribute`), and its agent A's APN.
    pub async fn converge(&self, with_attribute: bool) {
        for _ in 0..600 {
            let mut all = true;
            for d in &self.devices {
                let (enabled, fallback) = d.profiles().await;
                let installed = d.installed().await;
                let staged = installed.iter().find(|i| i.starts_with(B_ICCIDS)).cloned();
                all &= enabled.is_some_and(|i| i.starts_with(A_ICCIDS))
                    && staged.is_some()
                    && if with_attribute {
                        fallback == staged
                    } else {
                        fallback.is_none()
                    };
            }
            if all {
                self.wait_apn(A_APN).await;
                return;
            }
            self.advance(Duration::from_millis(200)).await;
        }
        let d = &self.devices[0];
        let (_, v) = self
            .call("GET", &format!("/api/v1/fleet/devices/{}", d.eid), None)
            .await;
        let decisions = self.decisions().await;
        panic!(
            "primaries enabled and fallbacks staged: {:?}\n{v:#}\n{:#}",
            d.profiles().await,
            Value::Array(decisions[decisions.len().saturating_sub(12)..].to_vec())
        );
    }

    /// What the network sees of every device, as its reports: it
    /// registers on the carrier of its enabled profile, and data flows only
    /// when its agent was given that carrier's real APN.
    pub async fn report_connectivity(&self) {
        let mut reports = Vec::new();
        for d in &self.devices {
            let (enabled, _) = d.profiles().await;
            let Some(enabled) = enabled else { continue };
            let apn = d.apns.lock().unwrap().last().cloned().unwrap_or_default();
            let works = if enabled.starts_with(A_ICCIDS) {
                apn == A_APN
            } else {
                apn == B_APN
            };
            reports.push(
                json!({"device": d.eid.to_string(), "kind": {"type": "registration",
                "outcome": {"result": "registered"}}}),
            );
            reports.push(
                json!({"device": d.eid.to_string(), "kind": {"type": "data_path",
                "latency_ms": 40, "loss_permille": if works { 0 } else { 1000 }}}),
            );
        }
        self.report(reports).await;
    }

    /// Every device reports `per_device` registrations its carrier rejected
    /// (EMM cause 15: no suitable cells in the tracking area).
    pub async fn report_rejections(&self, per_device: usize) {
        let rejections = self
            .devices
            .iter()
            .flat_map(|d| {
                (0..per_device).map(move |_| {
                    json!({"device": d.eid.to_string(), "kind": {"type": "registration",
                        "outcome": {"result": "rejected", "cause": 15}}})
                })
            })
            .collect();
        self.report(rejections).await;
    }

    pub async fn report(&self, reports: Vec<Value>) {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/fleet/reports",
                Some(json!({ "reports": reports })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A device's software: IPA sessions against the eIM (the eIM's packages
/// run on the eUICC, triggers downloaded straight from the SM-DP+), then
/// the agent fetches the fleet's commands for it (APN settings; the
/// Fallback Mechanism and the return from it, which the IPA runs on the
/// eUICC) and answers them.
#[allow(clippy::too_many_arguments)]
async fn device_loop(
    n: u64,
    device: Device,
    esipa: HttpsEsipa,
    direct: HttpsEs9Client,
    http: reqwest::Client,
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
) {
    let mut store = MemoryStore::default();
    let mut rng = StdRng::seed_from_u64(n);
    let config = IpaConfig {
        eid: Some(device.eid),
        download_path: DownloadPath::Direct,
        notification_retry: ferrosim_lpa::RetryPolicy::immediate(1),
        ..IpaConfig::default()
    };
    let agent = format!("{base}/api/v1/fleet/devices/{}/agent", device.eid);
    while !stop.load(Ordering::SeqCst) {
        {
            let mut card = device.card.lock().await;
            let mut es10 = Es10::open(
                |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
                &Es10Options::default(),
            )
            .unwrap();
            let state = store.last.clone().unwrap_or_else(PendingState::default);
            let mut ipa = Ipa::new(
                config.clone(),
                es10.link(),
                state,
                StdRng::seed_from_u64(rand::RngExt::random(&mut rng)),
                Timestamp::now(),
            );
            run_session(&mut ipa, es10.transport_mut(), &esipa, &direct, &mut store)
                .await
                .unwrap();
            let _ = es10.close();
        }
        // The server may be down (restarting): the agent tries again later.
        let Ok(resp) = http.get(&agent).bearer_auth(&token).send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let commands: Value = resp.json().await.unwrap_or(Value::Null);
        for c in commands["commands"].as_array().cloned().unwrap_or_default() {
            // The fallback mechanism and the return from it: the IPA runs
            // them on the eUICC (ES10b), the agent says how it went.
            let local = match c["command"].as_str() {
                Some("agent.executeFallbackMechanism") => Some(LocalOperation::ExecuteFallback),
                Some("agent.returnFromFallback") => Some(LocalOperation::ReturnFromFallback),
                _ => None,
            };
            let mut answer = json!({"action": c["action"], "ok": true});
            if let Some(op) = local {
                let seed = rand::RngExt::random(&mut rng);
                if let Err(e) = run_local(&device, &mut store, &config, seed, op).await {
                    eprintln!("{}: {} refused: {e}", device.eid, op.name());
                    answer = json!({"action": c["action"], "ok": false, "error": "wrong_state"});
                }
            }
            if c["command"] == "agent.apnConfig" {
                let apn = c["apn"]["apn"].as_str().unwrap_or_default().to_owned();
                let mut apns = device.apns.lock().unwrap();
                // A command given again (its result was lost) is applied once.
                if apns.last() != Some(&apn) {
                    apns.push(apn);
                }
            }
            let sent = http
                .post(&agent)
                .bearer_auth(&token)
                .json(&answer)
                .send()
                .await;
            if let Ok(resp) = sent {
                assert!(
                    resp.status().is_success() || resp.status().as_u16() == 404,
                    "agent result: {}",
                    resp.status()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs an operation the IPA starts itself (ExecuteFallbackMechanism,
/// ReturnFromFallback) on the device's eUICC; what the eIM must learn goes
/// with the IPA's next session.
async fn run_local(
    device: &Device,
    store: &mut MemoryStore,
    config: &IpaConfig,
    seed: u64,
    operation: LocalOperation,
) -> Result<(), String> {
    use ferrosim_ipa::driver::StateStore;
    use ferrosim_lpa::Transport;
    let mut card = device.card.lock().await;
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .map_err(|e| e.to_string())?;
    let state = store.last.clone().unwrap_or_default();
    let mut ipa = Ipa::new(
        config.clone(),
        es10.link(),
        state,
        StdRng::seed_from_u64(seed),
        Timestamp::now(),
    );
    ipa.start_local(operation, false, Timestamp::now());
    let mut report = None;
    while let Some(action) = ipa.poll() {
        match action {
            IpaAction::Transmit(apdu) => {
                let response = es10.transport_mut().transmit(&apdu);
                ipa.handle_apdu_response(response, Timestamp::now());
            }
            IpaAction::Persist(state) => store.save(&state).map_err(|e| e.to_string())?,
            IpaAction::SessionDone(done) => report = Some(done),
            other => return Err(format!("unexpected action {other:?}")),
        }
    }
    let _ = es10.close();
    match report {
        Some(r) if r.error.is_none() => match r.items.first() {
            Some(ItemReport::Local { code: 0, .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        },
        other => Err(format!("{other:?}")),
    }
}
