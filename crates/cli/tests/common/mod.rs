//! Virtual devices for the multi-process tests: each a virtual eUICC from a
//! test PKI with the activation code of its order, downloading through the
//! real LPA over any ES9+ client, and delivering its pending notifications
//! later when the SM-DP+ was away. Also the `ferrosim` binary run with a
//! clean environment ([`ferrosim`], [`ok`], [`refused`]), an eIM lab for the
//! IPA's end-to-end tests ([`eim_lab`]) and virtual IoT devices ([`iot`]).

#![allow(dead_code)]

pub mod eim_lab;
pub mod iot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::es9::Es9Function;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{
    ActivationCode, DownloadRequest, Es9Client, Es9ClientError, Es10, Es10Options, RetryPolicy,
    SmdpAddress, download_profile, process_notifications,
};
use ferrosim_pki::crl::issue::CrlRequest;
use ferrosim_pki::crl::register::CrlIssuer;
use ferrosim_pki::crl::{CrlNumber, CrlScope, RevokedEntry};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_server::sandbox::{self, SandboxOptions};
use ferrosim_smdp::store::OutboxStore;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::Es2Client;
use ferrosim_testkit::PROFILE_TYPE;
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The `ferrosim` binary under test.
pub const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

/// Runs `ferrosim ARGS` to its end, with none of the developer's instance
/// settings (see [`ferrosim_command`]).
pub fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(FERROSIM)
        .args(args)
        .output()
        .expect("running ferrosim")
}

/// Runs `ferrosim ARGS`, which must succeed; returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = ferrosim(args);
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ferrosim ARGS`, which must fail with `expected` in what it
/// printed, without panicking.
pub fn refused(args: &[&str], expected: &str) {
    let out = ferrosim(args);
    let all = output_text(&out);
    assert!(!out.status.success(), "{args:?} should fail: {all}");
    assert!(!all.contains("panicked"), "{args:?} panicked: {all}");
    assert!(
        all.contains(expected),
        "{args:?}: expected `{expected}` in: {all}"
    );
}

/// Runs `ferrosim simulate ARGS` on a blocking thread (the test's runtime
/// keeps serving while it runs); it must succeed and print its summary as
/// one JSON object, which is returned.
pub async fn simulate_json(args: Vec<String>) -> serde_json::Value {
    let run = tokio::task::spawn_blocking(move || {
        ferrosim_command(FERROSIM)
            .arg("simulate")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = output_text(&run);
    assert!(run.status.success(), "{text}");
    serde_json::from_slice(&run.stdout).expect(&text)
}

/// A path as text for a command line (the tests' temporary paths are UTF-8).
pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// One device: its eUICC (kept across attempts, like a real one) and its order.
pub struct Device {
    /// Index in the fleet.
    pub index: usize,
    /// The card.
    pub euicc: VirtualEuicc,
    /// EID as text.
    pub eid: String,
    /// ICCID of the profile ordered for it.
    pub iccid: String,
    /// Its activation code.
    pub code: ActivationCode,
    /// Download attempts made.
    pub attempts: u32,
    /// Why the last attempt failed, if it did.
    pub last_failure: Option<String>,
}

impl Device {
    /// ICCIDs of the profiles installed on the eUICC.
    pub fn installed(&self) -> Vec<String> {
        self.euicc
            .state()
            .profiles
            .iter()
            .map(|p| p.iccid.to_string())
            .collect()
    }

    /// Whether its ordered profile is on the card.
    pub fn has_its_profile(&self) -> bool {
        self.installed().contains(&self.iccid)
    }

    /// Notifications waiting on the eUICC.
    pub fn pending_notifications(&self) -> usize {
        self.euicc.state().notifications.len()
    }

    /// One full download through the LPA. The installation result is sent
    /// with a short retry (the flow's own); what is not acknowledged stays on
    /// the card for [`Device::deliver_notifications`].
    pub async fn download<C: Es9Client>(&mut self, client: &C) -> Result<(), String> {
        self.attempts += 1;
        let euicc = &mut self.euicc;
        let transport = move |apdu: &[u8]| euicc.handle_apdu(apdu, SystemTime::now());
        let mut es10 = Es10::open(transport, &Es10Options::default())
            .map_err(|e| format!("opening the ISD-R: {e}"))?;
        let mut request = DownloadRequest::new(&self.code, None);
        request.notification_retry = RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(1),
        };
        let result = download_profile(&mut es10, client, &request, |_| {
            ferrosim_lpa::download::Consent::Accept
        })
        .await;
        let _ = es10.close();
        match result {
            Ok(_) => {
                self.last_failure = None;
                Ok(())
            }
            Err(e) => {
                let why = format!("{}: {}", e.step, e.failure);
                self.last_failure = Some(why.clone());
                Err(why)
            }
        }
    }

    /// Sends every pending notification; returns how many are still on the card.
    pub async fn deliver_notifications<C: Es9Client>(&mut self, client: &C) -> usize {
        let euicc = &mut self.euicc;
        let transport = move |apdu: &[u8]| euicc.handle_apdu(apdu, SystemTime::now());
        let Ok(mut es10) = Es10::open(transport, &Es10Options::default()) else {
            return usize::MAX;
        };
        let left = match process_notifications(&mut es10, client, None, &RetryPolicy::immediate(2))
            .await
        {
            Ok(report) => report.undelivered.len(),
            Err(_) => usize::MAX,
        };
        let _ = es10.close();
        left
    }
}

/// A fresh test PKI of `euiccs` eUICCs whose TLS certificate names
/// `localhost`, written to `root/pki`; returns the PKI, that directory and
/// the CI certificate (PEM) a client trusts.
pub fn loopback_pki(root: &Path, euiccs: usize) -> (TestPki, PathBuf, String) {
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: euiccs,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .expect("test PKI");
    let pki_dir = root.join("pki");
    pki.write_to(&pki_dir).expect("writing the test PKI");
    let ci_pem = pki.ci.certificate_pem();
    (pki, pki_dir, ci_pem)
}

/// A CRL (DER) of `issuer` in `pki`, numbered `number`, listing `entries`;
/// valid from a minute ago for a week.
pub fn crl(pki: &TestPki, issuer: CrlIssuer, number: u128, entries: Vec<RevokedEntry>) -> Vec<u8> {
    let now = SystemTime::now();
    pki.issue_crl(
        issuer,
        &CrlRequest {
            number: CrlNumber::new(number),
            this_update: now - Duration::from_secs(60),
            next_update: now + Duration::from_secs(7 * 86_400),
            entries,
            scope: CrlScope::default(),
        },
    )
    .expect("issuing a CRL")
    .der()
    .to_vec()
}

/// The eUICC identities of a test PKI, in EID order.
pub fn identities(pki: &TestPki) -> Vec<EuiccIdentity> {
    let ci = vec![pki.ci.certificate.der().to_vec()];
    pki.euiccs
        .iter()
        .map(|e| {
            EuiccIdentity::from_parts(
                e.certificate.der(),
                Arc::new(e.signing_key().expect("eUICC key")),
                pki.eum.certificate.der(),
                ci.clone(),
            )
            .expect("eUICC identity")
        })
        .collect()
}

/// Orders one profile per eUICC of `pki` over ES2+ (linked to its EID,
/// released at once), at most `concurrency` at a time, each through
/// `desks[i % desks.len()]`; returns the devices with their activation codes.
pub async fn order_devices(
    pki: &TestPki,
    desks: &[Es2Client],
    smdp_address: &str,
    concurrency: usize,
) -> Vec<Device> {
    let address = SmdpAddress::new(smdp_address).expect("SM-DP+ address");
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for (index, identity) in identities(pki).into_iter().enumerate() {
        let desk = desks[index % desks.len()].clone();
        let sem = Arc::clone(&sem);
        let address = address.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let eid = identity.eid().to_string();
            let (iccid, matching_id) = desk
                .order_released(PROFILE_TYPE, Some(&eid), None)
                .await
                .unwrap_or_else(|e| panic!("ordering for {eid}: {e:#}"));
            Device {
                index,
                euicc: VirtualEuicc::new(identity, EuiccState::default()),
                eid,
                iccid,
                code: ActivationCode::new(address, Some(&matching_id)).expect("activation code"),
                attempts: 0,
                last_failure: None,
            }
        });
    }
    let mut devices: Vec<Device> = tasks.join_all().await;
    devices.sort_by_key(|d| d.index);
    devices
}

/// Runs one download on every device, at most `concurrency` at a time,
/// with the client `client_for(device index)`; returns the devices (in
/// order) once all attempts ended.
pub async fn download_all<C, F>(
    devices: Vec<Device>,
    concurrency: usize,
    client_for: F,
) -> Vec<Device>
where
    C: Es9Client + 'static,
    F: Fn(usize) -> C,
{
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for mut device in devices {
        let client = client_for(device.index);
        let sem = Arc::clone(&sem);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let _ = device.download(&client).await;
            device
        });
    }
    let mut devices: Vec<Device> = tasks.join_all().await;
    devices.sort_by_key(|d| d.index);
    devices
}

/// An HTTPS ES9+ client trusting the test CI.
pub fn https_client(ci_pem: &str) -> HttpsEs9Client {
    let roots = TlsTrust::roots_from_bytes(ci_pem.as_bytes()).expect("CI certificate");
    HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).expect("ES9+ client")
}

/// The PostgreSQL server of the test environment (see
/// [`ferrosim_testkit::postgres_admin_url`]: fails when it is missing unless
/// `FERROSIM_SKIP_POSTGRES=1`).
pub fn postgres_admin_url(test: &str) -> Option<String> {
    ferrosim_testkit::postgres_admin_url(test)
}

/// Starts `ferrosim serve` (off the async runtime: starting blocks until it listens).
pub async fn spawn(command: ServeCommand) -> ServeProcess {
    tokio::task::spawn_blocking(move || command.spawn())
        .await
        .expect("spawn task")
        .unwrap_or_else(|e| panic!("starting ferrosim serve: {e:#}"))
}

/// Waits until the callback outbox has nothing left to deliver, or `timeout`.
pub async fn wait_for_outbox(store: &SqlStore, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if store.pending_callbacks().await.expect("pending callbacks") == 0 {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ES9+ client that counts the successful calls per function and
/// per `host:port` it was sent to (under the RoundRobin: per instance).
#[derive(Clone)]
pub struct Counting<C> {
    inner: C,
    counts: Arc<Mutex<BTreeMap<(String, &'static str), usize>>>,
}

impl<C> Counting<C> {
    /// Counts the calls through `inner`.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// Successful calls by (address, function).
    pub fn counts(&self) -> BTreeMap<(String, &'static str), usize> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn count<T, E>(&self, address: &SmdpAddress, function: &'static str, r: &Result<T, E>) {
        if r.is_ok()
            && let Ok(mut c) = self.counts.lock()
        {
            *c.entry((address.to_string(), function)).or_insert(0) += 1;
        }
    }
}

impl<C: Es9Client> Es9Client for Counting<C> {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let r = self.inner.call::<F>(address, request).await;
        self.count(address, F::NAME, &r);
        r
    }
}

/// Creates the operator (callbacks to `callback_url`), the profile type and
/// the profiles; returns the operator's token.
pub async fn seed(url: &str, callback_url: &str, profiles: u64) -> String {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .expect("seeding");
    let token = sandbox::seed(
        &store,
        &SandboxOptions {
            profiles,
            callback_url: Some(callback_url.to_owned()),
            ..SandboxOptions::default()
        },
    )
    .await
    .expect("seeding");
    store.close().await;
    token
}

/// Starts the server again on the port of the killed one (retrying while
/// the port is not yet free).
pub async fn restart(command: &ServeCommand, killed: &ServeProcess) -> ServeProcess {
    let command = command.clone().listen(killed.local_addr());
    let mut last = None;
    for _ in 0..20 {
        let c = command.clone();
        match tokio::task::spawn_blocking(move || c.spawn())
            .await
            .expect("spawn task")
        {
            Ok(p) => return p,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cannot restart on {}: {:?}", killed.local_addr(), last);
}
