//! `ferrosim serve` with `[revocation]`: the SM-DP+ refuses a revoked eUICC
//! certificate at authenticateClient (8.1.3 / 6.1) while the other eUICCs
//! of the same EUM download, and a revoked EUM certificate (8.1.2 / 6.1); a CRL file replaced while serving is read again;
//! a distribution point that is down is refused or warned about per policy;
//! a bad `[revocation]` section or CRL file stops the start with its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{crl, https_client, order_devices, seed, spawn};
use ferrosim_pki::crl::RevokedEntry;
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{Es2Client, OPERATOR};

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

fn revoked(pki: &TestPki, i: usize) -> RevokedEntry {
    entry(
        pki.euiccs[i].certificate.serial_number().to_vec(),
        SystemTime::now(),
        None,
    )
}

/// A hierarchy, a seeded database and a config file; returns the command to serve it.
async fn instance(
    dir: &Path,
    options: TestPkiOptions,
    revocation: &str,
) -> (TestPki, ServeCommand, String, SlowCallbackEndpoint) {
    let data_dir = dir.join("data");
    let pki = TestPki::generate(&TestPkiOptions {
        smdp_address: "localhost".into(),
        ..options
    })
    .unwrap();
    let pki_dir = dir.join("pki");
    pki.write_to(&pki_dir).unwrap();
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, pki.euiccs.len() as u64).await;
    let config = dir.join("ferrosim.toml");
    std::fs::write(&config, format!("[revocation]\n{revocation}")).unwrap();
    let command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir)
        .config(&config);
    (pki, command, token, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_euicc_is_refused_at_authenticate_client() {
    let dir = tempfile::tempdir().unwrap();
    let crl_path = dir.path().join("eum.crl");
    let (pki, command, token, _sink) = instance(
        dir.path(),
        TestPkiOptions {
            euicc_count: 3,
            ..TestPkiOptions::default()
        },
        &format!(
            "crl_files = [{:?}]\nreload_secs = 1\n",
            crl_path.display().to_string()
        ),
    )
    .await;
    std::fs::write(
        &crl_path,
        crl(&pki, CrlIssuer::Eum, 1, vec![revoked(&pki, 0)]),
    )
    .unwrap();
    // Info logs name each CRL read while serving.
    let server = spawn(command.env("FERROSIM_LOG", "info")).await;
    let ci_pem = pki.ci.certificate_pem();
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let https = https_client(&ci_pem);

    let failure = devices[0].download(&https).await.unwrap_err();
    assert!(failure.contains("authenticateClient"), "{failure}");
    assert!(failure.contains("8.1.3"), "{failure}");
    assert!(failure.contains("6.1"), "{failure}");
    assert!(devices[0].installed().is_empty());
    devices[1].download(&https).await.unwrap();
    assert_eq!(devices[1].installed(), vec![devices[1].iccid.clone()]);

    // The EUM publishes a new CRL revoking the third eUICC too (written
    // whole, then renamed into place); once the server says it read it
    // (reload_secs = 1), the third eUICC is refused.
    let fresh = dir.path().join("eum.crl.new");
    std::fs::write(
        &fresh,
        crl(
            &pki,
            CrlIssuer::Eum,
            2,
            vec![revoked(&pki, 0), revoked(&pki, 2)],
        ),
    )
    .unwrap();
    std::fs::rename(&fresh, &crl_path).unwrap();
    let mut read = false;
    for _ in 0..100 {
        if server.log().lines().any(|l| l.contains("CRL file read")) {
            read = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(read, "the new CRL was never read: {}", server.log());
    let failure = devices[2].download(&https).await.unwrap_err();
    assert!(failure.contains("8.1.3"), "{failure}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_eum_is_refused_at_authenticate_client() {
    let dir = tempfile::tempdir().unwrap();
    let crl_path = dir.path().join("ci.crl");
    let (pki, command, token, _sink) = instance(
        dir.path(),
        TestPkiOptions {
            euicc_count: 1,
            ..TestPkiOptions::default()
        },
        &format!("crl_files = [{:?}]\n", crl_path.display().to_string()),
    )
    .await;
    let eum = entry(
        pki.eum.certificate.serial_number().to_vec(),
        SystemTime::now(),
        None,
    );
    std::fs::write(&crl_path, crl(&pki, CrlIssuer::Ci, 1, vec![eum])).unwrap();
    let server = spawn(command).await;
    let ci_pem = pki.ci.certificate_pem();
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let failure = devices[0]
        .download(&https_client(&ci_pem))
        .await
        .unwrap_err();
    assert!(failure.contains("authenticateClient"), "{failure}");
    assert!(failure.contains("8.1.2"), "EUM certificate: {failure}");
    assert!(failure.contains("6.1"), "{failure}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_distribution_point_follows_the_policy() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for (policy, downloads) in [("refuse", false), ("warn", true)] {
        let dir = tempfile::tempdir().unwrap();
        let (pki, command, token, _sink) = instance(
            dir.path(),
            TestPkiOptions {
                euicc_count: 1,
                crl_base_url: Some(format!("http://{closed}")),
                ..TestPkiOptions::default()
            },
            &format!("fetch_distribution_points = true\non_stale = {policy:?}\n"),
        )
        .await;
        let server = spawn(command).await;
        let ci_pem = pki.ci.certificate_pem();
        server
            .wait_healthy(&ci_pem, Duration::from_secs(30))
            .await
            .unwrap();
        let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
        let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
        let result = devices[0].download(&https_client(&ci_pem)).await;
        assert_eq!(result.is_ok(), downloads, "{policy}: {result:?}");
        if let Err(f) = result {
            assert!(f.contains("authenticateClient"), "{f}");
        }
        drop(server);
    }
}

#[test]
fn bad_revocation_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.crl");
    std::fs::write(&garbage, b"not a CRL").unwrap();
    for (section, expected) in [
        ("on_stale = \"sometimes\"\nenabled = true\n", "on_stale"),
        (
            "crl_files = [\"/nonexistent/ci.crl\"]\n",
            "/nonexistent/ci.crl",
        ),
        (
            &format!("crl_files = [{:?}]\n", garbage.display().to_string()),
            "garbage.crl",
        ),
        ("crl_urls = [\"ftp://x/ci.crl\"]\n", "ftp://x/ci.crl"),
        ("crl_url = []\n", "unknown field"),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, format!("[revocation]\n{section}")).unwrap();
        let out = Command::new(FERROSIM)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("FERROSIM_LOG", "error")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{section}: {text}");
        assert_ne!(out.status.code(), Some(101), "panic: {text}");
        assert!(
            text.contains(expected),
            "{section}: expected {expected:?} in {text}"
        );
    }
}
