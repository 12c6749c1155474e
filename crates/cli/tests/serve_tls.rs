//! The TLS certificate `ferrosim serve` presents: `pki init` puts an IP
//! address into an IP subjectAltName so that ordinary TLS clients (curl,
//! Python's ssl) accept it, and `serve` refuses a certificate that devices
//! would refuse (expired, or not naming the SM-DP+ address) unless told to
//! serve anyway, and then warns loudly.
//!
//! curl and python3 are external programs: the test fails when neither is
//! installed, unless `FERROSIM_TLS_CLIENTS_SKIP` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_testkit::pcsc::find_program;
use ferrosim_testkit::serve::ServeCommand;

fn ferrosim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
}

fn pki_init(out: &Path, address: &str) {
    let run = ferrosim()
        .args([
            "pki",
            "init",
            "--out",
            out.to_str().unwrap(),
            "--smdp-address",
            address,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn serve(data: &Path, pki: &Path, address: &str) -> ServeCommand {
    ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
        .data_dir(data)
        .pki_dir(pki)
        .smdp_address(address)
        .start_timeout(Duration::from_secs(30))
}

#[test]
fn an_ip_address_certificate_is_accepted_by_curl_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "127.0.0.1:8443");
    let show = ferrosim()
        .args(["pki", "show", pki.join("DPtls/dptls.pem").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("IP addresses:     127.0.0.1"), "{text}");
    assert!(!text.contains("DNS names"), "{text}");

    let server = serve(&dir.path().join("data"), &pki, "127.0.0.1:8443")
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/health", server.port());
    let ca = pki.join("CI/ci.pem");
    let mut clients = 0;
    if let Some(curl) = find_program("curl") {
        clients += 1;
        let out = Command::new(curl)
            .args([
                "--silent",
                "--show-error",
                "--cacert",
                ca.to_str().unwrap(),
                &url,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout == b"ok",
            "curl: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(python) = find_program("python3") {
        clients += 1;
        let script = "import ssl, sys, urllib.request\n\
            ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
            print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=10).read().decode())\n";
        let out = Command::new(python)
            .args(["-c", script, ca.to_str().unwrap(), &url])
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "python3: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if clients == 0 && std::env::var_os("FERROSIM_TLS_CLIENTS_SKIP").is_none() {
        panic!("neither curl nor python3 is installed (set FERROSIM_TLS_CLIENTS_SKIP to skip)");
    }
}

#[test]
fn a_certificate_for_another_host_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "127.0.0.1");
    let refused = serve(&dir.path().join("data"), &pki, "smdp.example.com:443")
        .spawn()
        .expect_err("served with a certificate for another host");
    let text = format!("{refused:#}");
    assert!(text.contains("refusing to serve"), "{text}");
    assert!(text.contains("IP:127.0.0.1"), "{text}");
    assert!(text.contains("smdp.example.com:443"), "{text}");
    assert!(text.contains("allow_tls_mismatch"), "{text}");

    let server = serve(&dir.path().join("data"), &pki, "smdp.example.com:443")
        .arg("--allow-tls-mismatch")
        .spawn()
        .unwrap();
    let log = server.log();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("DPTLS CERTIFICATE PROBLEM"), "{log}");
}

#[test]
fn an_expired_certificate_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        smdp_address: "localhost".into(),
        not_before: now - day * 3,
        not_after: now - day,
        ..TestPkiOptions::default()
    })
    .unwrap()
    .write_to(&pki)
    .unwrap();
    let refused = serve(&dir.path().join("data"), &pki, "localhost")
        .spawn()
        .expect_err("served with an expired certificate");
    let text = format!("{refused:#}");
    assert!(text.contains("refusing to serve"), "{text}");
    assert!(text.contains("expired"), "{text}");

    let config = dir.path().join("ferrosim.toml");
    std::fs::write(&config, "[pki]\nallow_tls_mismatch = true\n").unwrap();
    let server = serve(&dir.path().join("data"), &pki, "localhost")
        .config(&config)
        .spawn()
        .unwrap();
    assert!(server.log().contains("expired"), "{}", server.log());
}
