//! `ferrosim serve` and storage faults.
//!
//! - A damaged database is refused at start with the cause, instead of a
//!   server that says it listens and then fails every call.
//! - The database's disk fills up (SQLite in a small tmpfs, in a private
//!   mount namespace: see `ferrosim_testkit::namespace`), or the PostgreSQL
//!   server drops every connection and refuses new ones: ES2+ and ES9+ calls
//!   fail with an SGP.22 status (not a hang, not a panic), `/ready` answers
//!   503 with the cause while the fault lasts (`/health` stays 200: the
//!   process runs), and once the fault is gone the same process serves again
//!   (no restart): `/ready` 200, new orders and downloads succeed, and every
//!   order committed before the fault is still there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferrosim_server::es2_client::Es2ClientError;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::namespace::{self, Place};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use ferrosim_testkit::{Es2Client, OPERATOR, PROFILE_TYPE, audit};

use common::{FERROSIM, https_client, loopback_pki, order_devices, seed, spawn};

#[test]
fn serve_refuses_a_damaged_database() {
    let root = tempfile::tempdir().unwrap();
    let dd = root.path().join("data");
    let out = Command::new(FERROSIM)
        .args(["init", "--data-dir"])
        .arg(&dd)
        .args(["--listen", "127.0.0.1:9443"])
        .env("FERROSIM_LOG", "warn")
        .env_remove("FERROSIM_CONFIG")
        .env_remove("FERROSIM_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = dd.join("ferrosim.db");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 8 * 4096, "database unexpectedly small: {len} bytes");
    // Damage pages in the middle of the file, keeping its header.
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&vec![0xa5; 3 * 4096]).unwrap();
    drop(file);

    let err = ServeCommand::new(FERROSIM)
        .data_dir(&dd)
        .spawn()
        .expect_err("serve must refuse a damaged database");
    let text = format!("{err:#}");
    assert!(text.contains("ended before listening"), "{text}");
    assert!(
        text.contains("integrity check") || text.contains("damaged"),
        "{text}"
    );
    assert!(text.contains("ferrosim.db"), "{text}");
}

#[test]
fn serve_on_a_full_disk_reports_it_and_recovers_without_restart() {
    if namespace::rerun_inside("serve_on_a_full_disk_reports_it_and_recovers_without_restart")
        == Place::Outside
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    namespace::mount_tmpfs(&data, "4m");
    let url = format!("sqlite:{}", data.join("ferrosim.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(scenario(root.path(), &url, None, |fault| {
        if fault {
            namespace::fill_up(&data, "filler");
        } else {
            std::fs::remove_file(data.join("filler")).unwrap();
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_that_drops_its_connections_recovers_without_restart() {
    let Some(admin) = common::postgres_admin_url(
        "serve_on_postgres_that_drops_its_connections_recovers_without_restart",
    ) else {
        return;
    };
    let db = ferrosim_testkit::fresh_postgres(&admin).await.unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let root = tempfile::tempdir().unwrap();
    let control = admin.clone();
    let fault = move |on: bool| {
        let sql = if on {
            format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
        } else {
            format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        };
        let control = control.clone();
        // The scenario calls this from async code: run it on its own thread.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(ferrosim_testkit::postgres_execute(&control, &sql))
                .unwrap()
        })
        .join()
        .unwrap();
    };
    scenario(root.path(), &db.url, Some(&db.url), fault).await;
}

/// `GET /ready`: the status code and body.
async fn ready(server: &ServeProcess, ci_pem: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/ready", server.base_url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The whole story on the database `url` (the server's own SQLite file
/// when `database_url` is `None`): `fault(true)` starts the fault,
/// `fault(false)` ends it.
async fn scenario(root: &Path, url: &str, database_url: Option<&str>, fault: impl Fn(bool)) {
    let (pki, pki_dir, ci_pem) = loopback_pki(root, 2);
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(url, &sink.url, 6).await;
    let mut command = ServeCommand::new(FERROSIM)
        .data_dir(root.join("data"))
        .pki_dir(&pki_dir);
    if let Some(url) = database_url {
        command = command.database_url(url);
    }
    let server = spawn(command).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let https = https_client(&ci_pem);

    // Before: two orders, one of them installed.
    let mut devices =
        order_devices(&pki, std::slice::from_ref(&desk), server.smdp_address(), 1).await;
    devices[0].download(&https).await.unwrap();
    assert_eq!(ready(&server, &ci_pem).await.0, 200);

    fault(true);
    // ES2+: a failure answer on our side (SGP.22 8.8/4.2 with a message),
    // promptly; ES9+: the download fails, the device keeps nothing.
    match desk.order_released(PROFILE_TYPE, None, None).await {
        Err(Es2ClientError::Failed {
            subject_code,
            reason_code,
            ..
        }) => assert_eq!(
            (subject_code.as_str(), reason_code.as_str()),
            ("8.8", "4.2")
        ),
        other => panic!("an order during the fault: {other:?}"),
    }
    let failure = devices[1]
        .download(&https)
        .await
        .expect_err("download during the fault");
    assert!(failure.contains("8.8"), "{failure}");
    assert!(devices[1].installed().is_empty());
    let (status, body) = ready(&server, &ci_pem).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"status\":\"unavailable\""), "{body}");
    server
        .wait_healthy(&ci_pem, Duration::from_secs(5))
        .await
        .unwrap();

    fault(false);
    // The same process serves again at once.
    let (status, body) = ready(&server, &ci_pem).await;
    assert_eq!(status, 200, "{body}");
    let (third, _) = desk.order_released(PROFILE_TYPE, None, None).await.unwrap();
    devices[1].download(&https).await.unwrap();
    assert_eq!(devices[1].installed(), vec![devices[1].iccid.clone()]);

    // Nothing committed was lost, nothing failed was kept.
    let log = server.log();
    drop(server);
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    let orders = audit::orders(&store).await.unwrap();
    store.close().await;
    assert_eq!(orders.len(), 3, "{orders:?}\nserver log:\n{log}");
    assert_eq!(orders[&devices[0].iccid].state, "installed");
    assert_eq!(orders[&devices[1].iccid].state, "installed");
    assert_eq!(orders[&third].state, "released");
}
