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
