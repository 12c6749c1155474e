//! ESipa over plain HTTP for a lab (`[eim] lab_plain_http_listen`): off
//! unless configured (`serve` then has only its HTTPS listener, which does
//! not answer plain HTTP); when configured, `serve` announces the lab
//! listener after its listening line, the real IPA (`ferrosim ipa poll
//! --eim http://…`) runs a package over plain HTTP on loopback and the
//! eIM stores its verified result, and the lab listener serves ESipa only
//! (no REST API, no health page). Garbage values of the setting are refused
//! at start with the setting's name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use ferrosim_testkit::serve::ServeCommand;
use serde_json::Value;

use common::iot::{ASSOCIATION_TOKEN, add_initial_eim, ferrosim_ok};
use common::{FERROSIM, loopback_pki, spawn};

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The lab listener's address, from the warning `serve` logs when it starts it.
fn lab_address(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("PLAIN HTTP"))?;
    let start = line.find("local_addr=")? + "local_addr=".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipa_polls_over_plain_http_only_when_a_lab_listener_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), 1);
    let ca = dir.path().join("ci.pem");
    std::fs::write(&ca, &ci_pem).unwrap();
    let http = reqwest::Client::new();

    // Off by default: one HTTPS listener, which a plain HTTP ESipa call
    // does not get an answer from.
    let command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir);
    let server = spawn(command).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let plain = http
        .post(format!("http://127.0.0.1:{}/gsma/rsp2/asn1", server.port()))
        .header("content-type", "application/x-gsma-rsp-asn1")
        .body(vec![0xBF, 0x4F, 0x00])
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 200),
        "the HTTPS listener answered plain HTTP: {plain:?}"
    );
    assert!(!server.log().contains("PLAIN HTTP"), "{}", server.log());
    drop(server);

    // Configured: the lab listener on a port of its own.
    let config = dir.path().join("lab.toml");
    std::fs::write(&config, "[eim]\nlab_plain_http_listen = \"127.0.0.1:0\"\n").unwrap();
    let command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir)
        .config(&config);
    let server = spawn(command).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let lab = lab_address(&server.log())
        .unwrap_or_else(|| panic!("no lab listener in the log:\n{}", server.log()));
    assert!(lab.starts_with("127.0.0.1:"), "{lab}");
    let instance = [
        "--data-dir".to_owned(),
        path(&data_dir),
        "--pki-dir".to_owned(),
        path(&pki_dir),
        "--config".to_owned(),
        path(&config),
    ];

    // A virtual IoT eUICC given this eIM, associated, with one package queued.
    let eid = pki.euiccs[0].certificate.eid().unwrap().digits();
    let euicc_state = dir.path().join("euicc.json");
    let ipa_state = dir.path().join("ipa.json");
    let first_eim = dir.path().join("first-eim.der");
    std::fs::write(&first_eim, add_initial_eim(&instance, dir.path())).unwrap();
    let pki_arg = path(&pki_dir);
    let state_arg = path(&euicc_state);
    ferrosim_ok(
        &[],
        &[
            "euicc",
            "init",
            "--identity",
            &pki_arg,
            "--eid",
            &eid,
            "--state",
            &state_arg,
        ],
    );
    let device = [
        "--euicc-state",
        &state_arg,
        "--identity",
        &pki_arg,
        "--eid",
        &eid,
    ];
    let mut add = vec!["ipa"];
    add.extend(device);
    add.extend(["add-initial-eim", "--file", first_eim.to_str().unwrap()]);
    assert!(ferrosim_ok(&[], &add).contains("initial eIM added"));
    let token = ASSOCIATION_TOKEN.to_string();
    ferrosim_ok(
        &instance,
        &[
            "eim",
            "associate",
            "--eid",
            &eid,
            "--association-token",
            &token,
        ],
    );
    ferrosim_ok(&instance, &["eim", "list-profiles", "--eid", &eid]);

    // The IPA polls the lab listener over plain HTTP, with each binding.
    let url = format!("http://{lab}");
    for binding in ["asn1", "json"] {
        let ca_arg = path(&ca);
        let ipa_arg = path(&ipa_state);
        let mut poll = vec!["ipa"];
        poll.extend(device);
        poll.extend([
            "poll",
            "--eim",
            &url,
            "--binding",
            binding,
            "--ca",
            &ca_arg,
            "--state",
            &ipa_arg,
        ]);
        let session: Value = serde_json::from_str(&ferrosim_ok(&[], &poll)).unwrap();
        assert_eq!(session["error"], Value::Null, "{binding}: {session}");
        assert_eq!(session["pending"], 0, "{binding}: {session}");
        if binding == "asn1" {
            assert_eq!(session["items"].as_array().unwrap().len(), 1, "{session}");
            assert_eq!(
                session["acknowledged"].as_array().unwrap().len(),
                1,
                "{session}"
            );
        } else {
            assert_eq!(session["items"], serde_json::json!([]), "{session}");
        }
    }
    let results: Value =
        serde_json::from_str(&ferrosim_ok(&instance, &["eim", "results", "--eid", &eid])).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["trust"], "verified", "{results:?}");
    assert_eq!(results[0]["outcome"]["outcome"], "executed", "{results:?}");

    // ESipa only: neither the REST API nor the health page over plain HTTP.
    for page in ["/health", "/api/v1/eim/devices", "/openapi.json"] {
        let r = http.get(format!("{url}{page}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{page} over plain HTTP");
    }
    drop(server);

    // Garbage values are refused at start, naming the setting.
    for value in [
        "\"garbage\"",
        "\"localhost\"",
        "\"127.0.0.1:99999\"",
        "8080",
        "\"\"",
        "[\"127.0.0.1:0\"]",
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, format!("[eim]\nlab_plain_http_listen = {value}\n")).unwrap();
        let command = ServeCommand::new(FERROSIM)
            .data_dir(&data_dir)
            .pki_dir(&pki_dir)
            .config(&bad)
            .start_timeout(Duration::from_secs(30));
        let err = tokio::task::spawn_blocking(move || command.spawn())
            .await
            .unwrap()
            .expect_err(value);
        let text = format!("{err:#}");
        assert!(
            text.contains("lab_plain_http_listen") && !text.contains("panicked"),
            "{value}: {text}"
        );
    }
}
