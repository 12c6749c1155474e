//! A key-encryption key inside a SoftHSM2 token (`[secrets]
//! kek_pkcs11_label`): `ferrosim keys init --pkcs11-label` generates it in
//! the token (never extractable), `serve` seals an older database's clear
//! rows with data keys the token wraps, a device downloads over loopback
//! HTTPS, `keys rotate --new-kek FILE` moves the data keys from the token to
//! a KEK file while `serve` runs, and the next download and a restart with
//! the file work. No K, OPc or PIN in the logs.
//!
//! Without SoftHSM2 the test fails with a clear message, unless
//! `FERROSIM_SKIP_PKCS11=1` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ferrosim_saip::Iccid;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use ferrosim_testkit::softhsm::{self, CONF_ENV, MODULE, PIN_ENV};
use ferrosim_testkit::{Es2Client, OPERATOR};

use common::{FERROSIM, https_client, loopback_pki, order_devices, seed};

const TOKEN: &str = "ferrosim-kek";
const PIN: &str = "pin-2718-user";
const SO_PIN: &str = "so-1414";

/// `ferrosim ARGS` on the tokens of `conf`, with the user PIN `pin`.
fn run(conf: &Path, args: &[&str], pin: &str) -> Output {
    ferrosim_command(FERROSIM)
        .args(args)
        .env(CONF_ENV, conf)
        .env(PIN_ENV, pin)
        .output()
        .unwrap()
}

fn raw(db: &Path) -> String {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", db.display())) {
        bytes.extend(wal);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn serve(
    conf: &Path,
    data_dir: &Path,
    pki_dir: &Path,
    config: &Path,
    ci_pem: &str,
) -> ServeProcess {
    let command = ServeCommand::new(FERROSIM)
        .data_dir(data_dir)
        .pki_dir(pki_dir)
        .config(config)
        .env(CONF_ENV, conf)
        .env(PIN_ENV, PIN)
        .env(
            "FERROSIM_LOG",
            "debug,ferrosim_store=trace,ferrosim_smdp=trace",
        );
    let server = tokio::task::spawn_blocking(move || command.spawn())
        .await
        .unwrap()
        .unwrap();
    server
        .wait_healthy(ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kek_in_a_token_seals_and_moves_to_a_file_while_serving() {
    if !softhsm::available("PKCS#11 KEK test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let conf = softhsm::private_config(root);
    softhsm::init_token(&conf, TOKEN, SO_PIN, PIN);
    let data_dir = root.join("data");
    let db = data_dir.join("ferrosim.db");
    let url = format!("sqlite:{}", db.display());
    let (pki, pki_dir, ci_pem) = loopback_pki(root, 2);
    let head =
        "[orders]\nhousekeeping_interval_secs = 1\n[secrets]\npurge_after_install = \"off\"\n";
    let token_table = format!("[secrets.kek_pkcs11]\nmodule = \"{MODULE}\"\ntoken = \"{TOKEN}\"\n");
    let token_config = root.join("token.toml");
    std::fs::write(
        &token_config,
        format!("{head}kek_pkcs11_label = \"kek-a\"\n{token_table}"),
    )
    .unwrap();
    let kek_file = root.join("kek");
    let file_config = root.join("file.toml");
    std::fs::write(
        &file_config,
        format!("{head}kek_file = \"{}\"\n{token_table}", kek_file.display()),
    )
    .unwrap();
    let cfg = token_config.to_str().unwrap();
    let dd = data_dir.to_str().unwrap();

    // An old database in clear.
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, 2).await;
    let mut secrets = Vec::new();
    {
        let store = SqlStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        for n in 1..=2 {
            let iccid = Iccid::from_body(&format!("89440000000{n:07}")).unwrap();
            let p = store.personalisation(&iccid).await.unwrap().unwrap();
            for k in [p.k.as_ref(), p.opc.as_ref()].into_iter().flatten() {
                secrets.push(hex::encode(k.as_bytes()));
            }
        }
        store.close().await;
    }
    assert_eq!(secrets.len(), 4);

    // The KEK generated in the token; a second one of that label refused.
    let out = run(
        &conf,
        &["keys", "init", "--pkcs11-label", "kek-a", "--config", cfg],
        PIN,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("generated"));
    let out = run(
        &conf,
        &["keys", "init", "--pkcs11-label", "kek-a", "--config", cfg],
        PIN,
    );
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("already exists"),
        "{}",
        output_text(&out)
    );
    // serve seals the clear rows under data keys the token wraps.
    let server = serve(&conf, &data_dir, &pki_dir, &token_config, &ci_pem).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !server.log().contains("profile secrets sealed in place") {
        assert!(tokio::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = raw(&db);
    assert!(
        secrets.iter().all(|s| !file.contains(s.as_str())),
        "raw file"
    );
    // A wrong PIN is a clear error.
    let out = run(
        &conf,
        &["profiles", "list", "--config", cfg, "--data-dir", dd],
        "wrong-pin",
    );
    assert!(!out.status.success());
    assert!(output_text(&out).contains("kek-a"), "{}", output_text(&out));

    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let es9 = https_client(&ci_pem);
    devices[0].download(&es9).await.unwrap();

    // The data keys move from the token to a KEK file while serving.
    let out = run(
        &conf,
        &["keys", "init", "--out", kek_file.to_str().unwrap()],
        PIN,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let out = run(
        &conf,
        &[
            "keys",
            "rotate",
            "--new-kek",
            kek_file.to_str().unwrap(),
            "--config",
            cfg,
            "--data-dir",
            dd,
        ],
        PIN,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("re-wrapped"));
    devices[1].download(&es9).await.unwrap();
    let mut logs = server.log();
    drop(server);

    // Restarted with the file.
    let server = serve(&conf, &data_dir, &pki_dir, &file_config, &ci_pem).await;
    let out = run(
        &conf,
        &[
            "keys",
            "status",
            "--config",
            file_config.to_str().unwrap(),
            "--data-dir",
            dd,
        ],
        PIN,
    );
    let status = output_text(&out);
    assert!(status.contains("(wraps every data key)"), "{status}");
    assert!(status.contains("in clear: 0"), "{status}");
    logs.push_str(&server.log());
    drop(server);

    assert!(devices.iter().all(common::Device::has_its_profile));
    let file = raw(&db);
    assert!(
        secrets.iter().all(|s| !file.contains(s.as_str())),
        "raw file"
    );
    assert!(logs.lines().count() > 50);
    secrets.push(PIN.to_owned());
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()) && !logs.contains(s.to_uppercase().as_str()),
            "a secret in the logs"
        );
    }
}
