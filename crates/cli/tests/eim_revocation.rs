//! `ferrosim serve` with `[revocation]`: its eIM refuses to associate a
//! device whose eUICC certificate the EUM's CRL revokes (REST `422`, code
//! `certificate_revoked`), associates the others, and once a new CRL
//! revoking an associated device is read while serving, answers that
//! device's GetEimPackage (ESipa ASN.1 binding over HTTPS) with
//! `eimPackageError undefinedError(127)` while a device in good standing
//! polls as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{crl, spawn};
use ferrosim_asn1::rasn::types::FixedOctetString;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::serve::ServeCommand;
use serde_json::{Value, json};

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

/// The EUM's CRL number `number`, revoking eUICCs `revoked`.
fn eum_crl(pki: &TestPki, number: u128, revoked: &[usize]) -> Vec<u8> {
    let now = SystemTime::now();
    let entries = revoked
        .iter()
        .map(|&i| {
            entry(
                pki.euiccs[i].certificate.serial_number().to_vec(),
                now - Duration::from_secs(60),
                None,
            )
        })
        .collect();
    crl(pki, CrlIssuer::Eum, number, entries)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eim_of_serve_refuses_revoked_euiccs() {
    let dir = tempfile::tempdir().unwrap();
    let (data, pki_dir) = (dir.path().join("data"), dir.path().join("pki"));
    let pki = TestPki::generate(&TestPkiOptions {
        smdp_address: "localhost".into(),
        euicc_count: 3,
        ..TestPkiOptions::default()
    })
    .unwrap();
    pki.write_to(&pki_dir).unwrap();
    let crl_path = dir.path().join("eum.crl");
    std::fs::write(&crl_path, eum_crl(&pki, 1, &[0])).unwrap();
    let config = dir.path().join("ferrosim.toml");
    std::fs::write(
        &config,
        format!(
            "[revocation]\ncrl_files = [{:?}]\nreload_secs = 1\n",
            path(&crl_path)
        ),
    )
    .unwrap();
    let server = spawn(
        ServeCommand::new(FERROSIM)
            .data_dir(&data)
            .pki_dir(&pki_dir)
            .config(&config)
            .env("FERROSIM_LOG", "info"),
    )
    .await;
    let ci_pem = pki.ci.certificate_pem();
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let out = ferrosim_command(FERROSIM)
        .args([
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ])
        .args(["--data-dir", path(&data), "--pki-dir", path(&pki_dir)])
        .args(["--config", path(&config)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let base = server.base_url();
    let eid = |i: usize| pki.euiccs[i].certificate.eid().unwrap();
    let associate = |i: usize| {
        let body = json!({
            "eid": eid(i).to_string(),
            "eumCertificate": pki.eum.certificate_pem(),
            "euiccCertificate": pki.euiccs[i].certificate_pem(),
            "associationToken": 7,
        });
        let request = http
            .post(format!("{base}/api/v1/eim/devices"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let poll = |i: usize| {
        let der = encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
            sgp32::GetEimPackageRequest::new(
                rsp::Octet16(FixedOctetString::new(eid(i).to_bcd())),
                None,
                None,
                None,
            ),
        ))
        .unwrap();
        let request = http
            .post(format!("{base}/gsma/rsp2/asn1"))
            .header("Content-Type", "application/x-gsma-rsp-asn1")
            .body(der);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            match decode_der::<sgp32::EsipaMessageFromEimToIpa>(&r.bytes().await.unwrap()).unwrap()
            {
                sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                    sgp32::GetEimPackageResponse::eimPackageError(code),
                ) => i64::try_from(code).unwrap(),
                other => panic!("{other:?}"),
            }
        }
    };

    // The revoked eUICC is not associated; the REST error says why.
    let (status, body) = associate(0).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "certificate_revoked", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("revoked"), "{body}");
    for i in [1, 2] {
        let (status, body) = associate(i).await;
        assert!((200..300).contains(&status), "{status}: {body}");
    }
    assert_eq!(poll(1).await, 1, "noEimPackageAvailable");

    // The EUM revokes eUICC 1 too; once the new CRL is read, eUICC 1's
    // polls are refused and eUICC 2 polls as before.
    let fresh = dir.path().join("eum.crl.new");
    std::fs::write(&fresh, eum_crl(&pki, 2, &[0, 1])).unwrap();
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
    assert_eq!(poll(1).await, 127, "undefinedError for a revoked eUICC");
    assert_eq!(poll(2).await, 1, "noEimPackageAvailable");
    assert!(
        server.log().contains(
            "refused: the device's eUICC certificates are refused by revocation checking"
        ),
        "{}",
        server.log()
    );
    drop(server);
}
