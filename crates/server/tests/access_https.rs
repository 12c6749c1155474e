//! Brute force against a running SM-DP+ over loopback HTTPS: one client
//! (127.0.0.2) sends 10,000 ES9+ authenticateClient calls the SM-DP+ must
//! refuse (the calls a matching-id or confirmation-code guesser makes); after
//! `max_failures` refusals its address is locked out and every further call
//! is answered 429 before its body is read, so the SM-DP+ ran the function
//! only for those few (counted in the audit trail); the metrics count the
//! refusals and the lockout; meanwhile another client (127.0.0.1) downloads
//! a profile as usual. Counts are asserted, never timings; the timings are
//! printed (`--nocapture`) for BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosim_audit::AuditLog;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_server::access::AccessPolicy;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use futures::StreamExt;

mod common;

const ATTEMPTS: usize = 10_000;
const MAX_FAILURES: u32 = 20;

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_is_locked_out_early_and_others_are_served() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 2,
        profiles: 3,
        audit: true,
        telemetry: true,
        access: Some(AccessPolicy {
            rate_per_sec: 1_000.0,
            burst: 1_000,
            max_failures: MAX_FAILURES,
            failure_window: Duration::from_secs(600),
            lockout: Duration::from_secs(600),
            ..AccessPolicy::default()
        }),
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let eids = smdp.pki.eids();

    // Baseline: the honest client's download before the attack.
    let (_, mid) = smdp.order(Some(&eids[0].to_string()), None).await.unwrap();
    let t = Instant::now();
    assert!(
        common::activate(&smdp, &es9, 0, &mid, false)
            .await
            .is_some()
    );
    let baseline = t.elapsed();

    // The attacker, from another address.
    let ci = reqwest::Certificate::from_pem(smdp.ci_pem().as_bytes()).unwrap();
    let attacker = reqwest::Client::builder()
        .tls_certs_only([ci])
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let url = format!("{}/gsma/rsp2/es9plus/authenticateClient", smdp.base_url());
    let (_, mid) = smdp.order(Some(&eids[1].to_string()), None).await.unwrap();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let attack = tokio::spawn(async move {
        futures::stream::iter(0..ATTEMPTS)
            .map(|i| {
                let (attacker, url) = (attacker.clone(), url.clone());
                async move {
                    let body = serde_json::json!({
                        "transactionId": format!("{i:032X}"),
                        "authenticateServerResponse": "vzhHMEU=",
                    });
                    let r = attacker
                        .post(&url)
                        .header("X-Admin-Protocol", "gsma/rsp/v2.2.0")
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<u16>>()
            .await
    });
    // The honest client downloads while the attack runs.
    let t = Instant::now();
    assert!(
        common::activate(&smdp, &es9, 1, &mid, false)
            .await
            .is_some()
    );
    let during = t.elapsed();
    let statuses = attack.await.unwrap();
    let attack_time = started.elapsed();
    let cpu = cpu_seconds() - cpu0;

    let refused_early = statuses.iter().filter(|s| **s == 429).count();
    let reached = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        refused_early + reached,
        ATTEMPTS,
        "only 200 (Failed) and 429"
    );
    assert!(
        (MAX_FAILURES as usize..=MAX_FAILURES as usize + 16).contains(&reached),
        "{reached} calls reached the SM-DP+"
    );

    // /metrics counts the refusals and the lockout.
    let text = smdp
        .https_client()
        .get(format!("{}/metrics", smdp.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let locked_line = format!(
        "ferrosim_access_refused_total{{surface=\"es9\",key=\"address\",reason=\"locked\"}} {refused_early}"
    );
    assert!(text.contains(&locked_line), "{locked_line} not in:\n{text}");
    assert!(text.contains("ferrosim_access_lockouts_total{surface=\"es9\",key=\"address\"} 1"));
    assert!(text.contains("ferrosim_access_locked_keys 1"));

    // The function ran only for the calls that reached it.
    let mut smdp = smdp;
    smdp.stop().await;
    let log: &dyn AuditLog = &smdp.store;
    let entries = log.entries(0, 100_000).await.unwrap();
    let from_attacker = entries
        .iter()
        .filter(|e| e.action == "es9.authenticateClient" && e.actor == "client:127.0.0.2")
        .count();
    assert_eq!(from_attacker, reached);

    println!(
        "MEASURE brute force: {ATTEMPTS} calls in {:.2} s ({:.0}/s), {reached} reached the SM-DP+, \
         {refused_early} refused early; process CPU {:.2} s ({:.0} us per call, client and server); \
         honest download {:.0} ms before, {:.0} ms during the attack",
        attack_time.as_secs_f64(),
        ATTEMPTS as f64 / attack_time.as_secs_f64(),
        cpu,
        cpu * 1e6 / ATTEMPTS as f64,
        baseline.as_secs_f64() * 1000.0,
        during.as_secs_f64() * 1000.0,
    );
}

/// A genuine eUICC guessing matching ids: each guess is refused after its
/// signature verified, so it counts against its EID; after
/// `eid_max_failures` guesses the device is locked out (429 before the
/// SM-DP+ runs anything), while its address — far from its own limit — and
/// another device behind it are served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_guessing_matching_ids_is_locked_out_by_its_eid() {
    const EID_MAX_FAILURES: u32 = 5;
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 2,
        profiles: 2,
        telemetry: true,
        access: Some(AccessPolicy {
            max_failures: 100,
            eid_max_failures: EID_MAX_FAILURES,
            ..AccessPolicy::default()
        }),
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let eids = smdp.pki.eids();
    // Device 0 guesses: every guess is refused by the SM-DP+ (8.2.6/3.8).
    for i in 0..EID_MAX_FAILURES {
        let guess = format!("GUESS-{i:04}");
        assert!(
            common::activate(&smdp, &es9, 0, &guess, false)
                .await
                .is_none()
        );
    }
    // Its own order would now be refused too: the device is locked out.
    let (_, mid) = smdp.order(Some(&eids[0].to_string()), None).await.unwrap();
    assert!(
        common::activate(&smdp, &es9, 0, &mid, false)
            .await
            .is_none()
    );
    // Another device from the same address downloads.
    let (_, mid) = smdp.order(Some(&eids[1].to_string()), None).await.unwrap();
    assert!(
        common::activate(&smdp, &es9, 1, &mid, false)
            .await
            .is_some()
    );

    let text = smdp
        .https_client()
        .get(format!("{}/metrics", smdp.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ferrosim_access_lockouts_total{surface=\"es9\",key=\"eid\"} 1",
        "ferrosim_access_refused_total{surface=\"es9\",key=\"eid\",reason=\"locked\"} 1",
        "ferrosim_access_locked_keys 1",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(
        !text.contains("ferrosim_access_lockouts_total{surface=\"es9\",key=\"address\"}"),
        "the address is not locked out:\n{text}"
    );
}

/// ESipa polls are counted against the EID they carry: one device polling
/// beyond its burst gets 429 with `Retry-After` before the eIM reads its
/// store, while another device polls as usual from the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esipa_polls_are_limited_per_device() {
    use ferrosim_asn1::rasn::types::FixedOctetString;
    use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
    use ferrosim_eim::relay::NoRelay;
    use ferrosim_eim::{Eim, EimConfig, EimId};
    use ferrosim_server::access::Access;
    use ferrosim_server::sandbox::{smdp_config, tls_identity};
    use ferrosim_server::{ServerOptions, esipa};
    use ferrosim_store::{SqlStore, StoreOptions};

    const EID_BURST: u32 = 3;
    let dir = tempfile::tempdir().unwrap();
    let pki = ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions {
        euicc_count: 2,
        smdp_address: "localhost".into(),
        ..ferrosim_pki::TestPkiOptions::default()
    })
    .unwrap();
    let store = SqlStore::connect(
        &format!("sqlite:{}", dir.path().join("eim.db").display()),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("localhost:{}", listener.local_addr().unwrap().port());
    let smdp = ferrosim_smdp::Smdp::new(smdp_config(&pki, &address, None).unwrap(), store.clone());
    let eim = Eim::new(
        store.clone(),
        EimConfig {
            eim_id: EimId::new("eim.access.test").unwrap(),
            key: Arc::new(ferrosim_crypto::SoftwareKey::generate().unwrap()),
            trust: pki.trust_store().unwrap(),
        },
    );
    let mut options = ServerOptions::new(tls_identity(&pki));
    let access = Access::new(AccessPolicy {
        eid_burst: EID_BURST,
        eid_rate_per_sec: 0.001,
        ..AccessPolicy::default()
    });
    options.access = Some(access.clone());
    let server = ferrosim_server::start_with(listener, smdp, options, esipa::routes(eim, NoRelay))
        .await
        .unwrap();
    let ci = reqwest::Certificate::from_pem(pki.ci.certificate_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ci])
        .build()
        .unwrap();
    let poll = |n: usize| {
        let eid = pki.euiccs[n].certificate.eid().unwrap();
        let der = encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
            sgp32::GetEimPackageRequest::new(
                rsp::Octet16(FixedOctetString::new(eid.to_bcd())),
                None,
                None,
                None,
            ),
        ))
        .unwrap();
        let request = http
            .post(format!("https://{address}/gsma/rsp2/asn1"))
            .header("Content-Type", "application/x-gsma-rsp-asn1")
            .body(der);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            let body = r.bytes().await.unwrap();
            if status == 200 {
                // Not associated: eidNotFound, from the eIM's store.
                assert!(matches!(
                    decode_der::<sgp32::EsipaMessageFromEimToIpa>(&body).unwrap(),
                    sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                        sgp32::GetEimPackageResponse::eimPackageError(_)
                    )
                ));
            }
            (status, retry)
        }
    };
    for _ in 0..EID_BURST {
        assert_eq!(poll(0).await, (200, false));
    }
    assert_eq!(poll(0).await, (429, true));
    assert_eq!(poll(0).await, (429, true));
    assert_eq!(poll(1).await, (200, false));
    let text = access.encode_metrics().unwrap();
    let line = "ferrosim_access_refused_total{surface=\"esipa\",key=\"eid\",reason=\"rate\"} 2";
    assert!(text.contains(line), "{line} not in:\n{text}");
    server.shutdown(Duration::from_secs(1)).await;
}
