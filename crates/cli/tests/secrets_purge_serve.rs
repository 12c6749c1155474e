//! `ferrosim serve` purges the K, OPc, PIN/PUK and ADM keys of installed
//! profiles (`[secrets] purge_after_install`, default at once): a profile
//! downloaded over loopback HTTPS by a virtual eUICC through the LPA keeps
//! its secrets while the setting is `off`, loses them at the next
//! housekeeping round once served with the default, and keeps its ICCID and
//! IMSI; a profile not installed keeps everything. Garbage values of the
//! setting are refused with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::store::ProfileStore;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use ferrosim_testkit::{Es2Client, OPERATOR};

use common::{FERROSIM, https_client, loopback_pki, order_devices, seed, spawn};

/// The clear forms of a profile's K and OPc (hex) as a grep would look for them.
fn key_needles(p: &Personalisation) -> Vec<String> {
    [p.k.as_ref(), p.opc.as_ref()]
        .into_iter()
        .flatten()
        .map(|k| hex::encode(k.as_bytes()))
        .collect()
}

async fn stored(url: &str, iccid: &str) -> (Personalisation, String, Option<i64>) {
    use sqlx::Row;
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    let p = store
        .personalisation(&Iccid::new(iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let row =
        sqlx::query("SELECT personalisation, secrets_purged_at FROM profiles WHERE iccid = $1")
            .bind(iccid)
            .fetch_one(store.pool())
            .await
            .unwrap();
    let text: String = row.get("personalisation");
    let purged: Option<i64> = row.get("secrets_purged_at");
    store.close().await;
    (p, text, purged)
}

fn config(dir: &Path, name: &str, secrets: &str) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!("[orders]\nhousekeeping_interval_secs = 1\n{secrets}"),
    )
    .unwrap();
    file
}

async fn serve(data_dir: &Path, pki_dir: &Path, config: &Path, ci_pem: &str) -> ServeProcess {
    let server = spawn(
        ServeCommand::new(FERROSIM)
            .data_dir(data_dir)
            .pki_dir(pki_dir)
            .config(config)
            .env("FERROSIM_LOG", "info,ferrosim_server=debug"),
    )
    .await;
    server
        .wait_healthy(ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_profiles_lose_their_keys_unless_configured_off() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), 1);
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, 2).await;

    // Kept while configured `off`: downloaded, installed, housekeeping runs.
    let off = config(
        dir.path(),
        "off.toml",
        "[secrets]\npurge_after_install = \"off\"\n",
    );
    let server = serve(&data_dir, &pki_dir, &off, &ci_pem).await;
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let device = &mut devices[0];
    let (before, _, _) = stored(&url, &device.iccid).await;
    let needles = key_needles(&before);
    assert_eq!(needles.len(), 2, "the profile has K and OPc");
    device.download(&https_client(&ci_pem)).await.unwrap();
    assert!(device.has_its_profile());
    let other_iccid = (1..=2)
        .map(|n| {
            Iccid::from_body(&format!("89440000000{n:07}"))
                .unwrap()
                .as_str()
                .to_owned()
        })
        .find(|i| *i != device.iccid)
        .unwrap();
    // Several housekeeping rounds (one a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(server.log().contains("purge_after_install = \"off\""));
    let (kept, text, purged) = stored(&url, &device.iccid).await;
    assert!(purged.is_none());
    assert_eq!(
        kept.k.map(|k| *k.as_bytes()),
        before.k.map(|k| *k.as_bytes())
    );
    for n in &needles {
        assert!(text.contains(n.as_str()), "kept with `off`");
    }
    drop(server);

    // The default: purged at the next round after installation.
    let default = config(dir.path(), "default.toml", "");
    let server = serve(&data_dir, &pki_dir, &default, &ci_pem).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (after, text, purged) = loop {
        let s = stored(&url, &device.iccid).await;
        if s.2.is_some() || tokio::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(purged.is_some(), "not purged; log:\n{}", server.log());
    assert!(
        server
            .log()
            .contains("K, OPc, PIN/PUK and ADM keys of installed profiles purged"),
        "{}",
        server.log()
    );
    for n in &needles {
        assert!(!text.contains(n.as_str()), "K/OPc still in the row");
    }
    assert!(after.k.is_none() && after.opc.is_none() && after.pin1.is_none());
    assert!(after.puk1.is_none() && after.adm1.is_none());
    assert_eq!(after.iccid.as_str(), device.iccid);
    assert_eq!(
        after.imsi.as_ref().map(|i| i.as_str().to_owned()),
        before.imsi.as_ref().map(|i| i.as_str().to_owned()),
        "IMSI kept"
    );
    assert!(after.imsi.is_some());
    // The profile that was not installed keeps its secrets.
    let (untouched, _, purged) = stored(&url, &other_iccid).await;
    assert!(purged.is_none() && untouched.k.is_some() && untouched.opc.is_some());
    drop(server);
}

#[test]
fn garbage_retentions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["\"7\"", "\"soon\"", "\"-1d\"", "7", "\"1h-\""] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, format!("[secrets]\npurge_after_install = {bad}\n")).unwrap();
        let out = std::process::Command::new(FERROSIM)
            .args(["serve", "--print-config", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&file)
            .env("FERROSIM_LOG", "error")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{bad}: {text}");
        assert!(!text.contains("panicked"), "{bad}: {text}");
        assert!(text.contains("purge_after_install"), "{bad}: {text}");
    }
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "[secrets]\npurge_after_install = \"7d\"\n").unwrap();
    let out = std::process::Command::new(FERROSIM)
        .args(["serve", "--print-config", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&file)
        .env("FERROSIM_LOG", "error")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("[secrets]") && shown.contains("purge_after_install = \"7d\""),
        "{shown}"
    );
}
