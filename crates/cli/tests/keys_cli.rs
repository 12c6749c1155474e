//! Profile secrets at rest through the command line and `ferrosim serve`:
//! a key-encryption key made by `ferrosim keys init`; a database written in
//! clear (as before sealing) migrated in place by `serve` in the background;
//! profiles imported with the KEK never reach the file in clear; downloads
//! over loopback HTTPS keep working across `keys rotate` (a new data key)
//! and `keys rotate --new-kek` (re-wrapped data keys) without stopping
//! `serve`; a missing, garbage or wrong KEK file is a clear error that
//! changes nothing; and no K or OPc reaches the logs at debug/trace level.
//! On PostgreSQL (when the test environment has one) an import with the
//! KEK is sealed, `serve` migrates the clear rows and `keys rotate`
//! re-seals every row.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ferrosim_saip::{Iccid, Imsi};
use ferrosim_smdp::store::ProfileStore;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use ferrosim_testkit::{Es2Client, OPERATOR, PROFILE_TYPE};

use common::{FERROSIM, https_client, loopback_pki, order_devices, seed};

/// Imported with the KEK: K and OPc that must never be stored in clear.
const IMPORTED: [(&str, &str); 2] = [
    (
        "5ec2e7000000000000000000000000a1",
        "0bc5ec2e700000000000000000000a01",
    ),
    (
        "5ec2e7000000000000000000000000a2",
        "0bc5ec2e700000000000000000000a02",
    ),
];

fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(FERROSIM).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = ferrosim(args);
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    output_text(&out)
}

fn refused(args: &[&str], why: &str) -> String {
    let out = ferrosim(args);
    let text = output_text(&out);
    assert!(!out.status.success(), "{args:?} succeeded: {text}");
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    assert!(text.contains(why), "{args:?}: expected `{why}` in {text}");
    text
}

/// The raw SQLite file and its WAL.
fn raw(db: &Path) -> String {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", db.display())) {
        bytes.extend(wal);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The K and OPc (hex) of every profile, read from a database in clear.
async fn clear_keys(url: &str) -> Vec<String> {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    use sqlx::Row;
    let iccids: Vec<String> = sqlx::query("SELECT iccid FROM profiles ORDER BY iccid")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("iccid"))
        .collect();
    let mut keys = Vec::new();
    for iccid in iccids {
        let s = store
            .personalisation(&Iccid::new(&iccid).unwrap())
            .await
            .unwrap()
            .unwrap();
        for k in [s.k.as_ref(), s.opc.as_ref()].into_iter().flatten() {
            keys.push(hex::encode(k.as_bytes()));
        }
    }
    store.close().await;
    keys
}

/// The personalisation column as stored, and the wrapped data keys.
async fn stored(url: &str) -> (String, String) {
    use sqlx::Row;
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    let column = sqlx::query("SELECT personalisation FROM profiles ORDER BY iccid")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("personalisation"))
        .collect::<Vec<_>>()
        .join("\n");
    let keys = sqlx::query("SELECT wrapped FROM data_keys ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("wrapped"))
        .collect::<Vec<_>>()
        .join("\n");
    store.close().await;
    (column, keys)
}

fn found<'a>(haystack: &str, needles: &'a [String]) -> Vec<&'a String> {
    needles
        .iter()
        .filter(|n| haystack.contains(n.as_str()) || haystack.contains(n.to_uppercase().as_str()))
        .collect()
}

/// A batch file of the two [`IMPORTED`] profiles (ICCIDs and IMSIs the
/// sandbox does not use).
fn batch_file(dir: &Path) -> PathBuf {
    let mut csv = String::from("iccid,imsi,ki,opc\n");
    for (n, (k, opc)) in IMPORTED.iter().enumerate() {
        let iccid = Iccid::from_body(&format!("89440000009000000{n}")).unwrap();
        let imsi = Imsi::with_mnc_len(&format!("00101900000000{n}"), 2).unwrap();
        csv.push_str(&format!("{},{},{k},{opc}\n", iccid.as_str(), imsi.as_str()));
    }
    let file = dir.join("batch.csv");
    std::fs::write(&file, csv).unwrap();
    file
}

fn serve_command(data_dir: &Path, pki_dir: &Path, config: &Path) -> ServeCommand {
    ServeCommand::new(FERROSIM)
        .data_dir(data_dir)
        .pki_dir(pki_dir)
        .config(config)
        .env(
            "FERROSIM_LOG",
            "debug,ferrosim=trace,ferrosim_server=trace,ferrosim_smdp=trace,ferrosim_store=trace,ferrosim_saip=trace",
        )
}

async fn start(command: ServeCommand) -> Result<ServeProcess, String> {
    tokio::task::spawn_blocking(move || command.spawn())
        .await
        .unwrap()
        .map_err(|e| format!("{e:#}"))
}

async fn wait_for_log(server: &ServeProcess, line: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !server.log().contains(line) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{line}` in:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_migrated_rotated_and_downloads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data_dir = root.join("data");
    let db = data_dir.join("ferrosim.db");
    let url = format!("sqlite:{}", db.display());
    let (pki, pki_dir, ci_pem) = loopback_pki(root, 3);
    let config = root.join("ferrosim.toml");
    std::fs::write(
        &config,
        "[orders]\nhousekeeping_interval_secs = 1\n[secrets]\npurge_after_install = \"off\"\n",
    )
    .unwrap();

    // An old database: profiles written in clear.
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, 3).await;
    let old_keys = clear_keys(&url).await;
    assert_eq!(old_keys.len(), 6);
    assert_eq!(found(&raw(&db), &old_keys).len(), 6, "stored in clear");

    // A KEK file: 0600, never overwritten.
    let kek1 = root.join("kek1");
    let out = ok(&["keys", "init", "--out", kek1.to_str().unwrap()]);
    assert!(out.contains("written to"), "{out}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek1).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let kek1_text = std::fs::read_to_string(&kek1).unwrap();
    assert_eq!(kek1_text.trim().len(), 64);
    refused(
        &["keys", "init", "--out", kek1.to_str().unwrap()],
        "exists already",
    );
    assert_eq!(std::fs::read_to_string(&kek1).unwrap(), kek1_text);
    refused(&["keys", "init"], "--out");

    // Missing and garbage KEK files: refused, nothing changed.
    let before = stored(&url).await;
    let garbage = root.join("garbage");
    std::fs::write(&garbage, "not a key at all\n").unwrap();
    let short = root.join("short");
    std::fs::write(&short, "00112233").unwrap();
    for (file, why) in [
        (root.join("missing"), "reading the key-encryption key file"),
        (garbage.clone(), "neither 32 bytes nor 64 hex digits"),
        (short.clone(), "32 needed"),
    ] {
        let e = start(serve_command(&data_dir, &pki_dir, &config).env("FERROSIM_KEK_FILE", &file))
            .await
            .map(|_| ())
            .expect_err("refused");
        assert!(e.contains(why), "{file:?}: {e}");
    }
    assert_eq!(stored(&url).await, before, "nothing changed");

    // Served with the KEK: the clear rows are sealed in the background.
    let mut logs = String::new();
    let server = start(serve_command(&data_dir, &pki_dir, &config).env("FERROSIM_KEK_FILE", &kek1))
        .await
        .unwrap();
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    wait_for_log(&server, "profile secrets sealed in place").await;
    let (column, _) = stored(&url).await;
    assert_eq!(found(&column, &old_keys), Vec::<&String>::new());
    assert_eq!(
        found(&raw(&db), &old_keys),
        Vec::<&String>::new(),
        "raw file"
    );
    let kek_arg = ["--kek-file", kek1.to_str().unwrap()];
    let dd = ["--data-dir", data_dir.to_str().unwrap()];
    let status = ok(&[&["keys", "status"][..], &kek_arg, &dd].concat());
    assert!(status.contains("in clear: 0"), "{status}");
    assert!(status.contains("sealed under data key 1: 3"), "{status}");
    assert!(status.contains("(wraps every data key)"), "{status}");

    // Imported with the KEK: never in the file in clear.
    let batch = batch_file(root);
    ok(&[
        &[
            "profiles",
            "import",
            "--operator",
            OPERATOR,
            "--type",
            PROFILE_TYPE,
            "--batch",
            batch.to_str().unwrap(),
        ][..],
        &kek_arg,
        &dd,
    ]
    .concat());
    let imported: Vec<String> = IMPORTED
        .iter()
        .flat_map(|(k, opc)| [k.to_string(), opc.to_string()])
        .collect();
    assert_eq!(found(&raw(&db), &imported), Vec::<&String>::new());
    // Without the KEK the sealed instance is refused.
    refused(
        &[
            &[
                "profiles",
                "import",
                "--operator",
                OPERATOR,
                "--type",
                PROFILE_TYPE,
                "--batch",
                batch.to_str().unwrap(),
            ][..],
            &dd,
        ]
        .concat(),
        "are encrypted",
    );

    // Downloads across rotations, serve running throughout.
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let es9 = https_client(&ci_pem);
    devices[0].download(&es9).await.unwrap();
    let out = ok(&[&["keys", "rotate"][..], &kek_arg, &dd].concat());
    assert!(
        out.contains("data key 2 made; 5 profile rows re-sealed"),
        "{out}"
    );
    devices[1].download(&es9).await.unwrap();
    let kek2 = root.join("kek2");
    ok(&["keys", "init", "--out", kek2.to_str().unwrap()]);
    // A garbage new KEK changes nothing.
    let before = stored(&url).await;
    refused(
        &[
            &["keys", "rotate", "--new-kek", garbage.to_str().unwrap()][..],
            &kek_arg,
            &dd,
        ]
        .concat(),
        "neither 32 bytes",
    );
    assert_eq!(stored(&url).await, before);
    let out = ok(&[
        &["keys", "rotate", "--new-kek", kek2.to_str().unwrap()][..],
        &kek_arg,
        &dd,
    ]
    .concat());
    assert!(out.contains("re-wrapped"), "{out}");
    devices[2].download(&es9).await.unwrap();
    assert!(devices.iter().all(common::Device::has_its_profile));
    logs.push_str(&server.log());
    drop(server);

    // The old KEK no longer opens the instance; no KEK neither. Nothing changed.
    let before = stored(&url).await;
    let e = start(serve_command(&data_dir, &pki_dir, &config).env("FERROSIM_KEK_FILE", &kek1))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert!(e.contains("does not open the instance's data keys"), "{e}");
    let e = start(serve_command(&data_dir, &pki_dir, &config))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert!(e.contains("are encrypted"), "{e}");
    let status = ok(&[&["keys", "status"][..], &kek_arg, &dd].concat());
    assert!(status.contains("does NOT wrap"), "{status}");
    assert_eq!(stored(&url).await, before, "nothing changed");

    // The new KEK serves.
    let server = start(serve_command(&data_dir, &pki_dir, &config).env("FERROSIM_KEK_FILE", &kek2))
        .await
        .unwrap();
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let status = ok(&[
        &["keys", "status", "--kek-file", kek2.to_str().unwrap()][..],
        &dd,
    ]
    .concat());
    assert!(
        status.contains("sealed under data key 2: 5") && status.contains("in clear: 0"),
        "{status}"
    );
    logs.push_str(&server.log());
    drop(server);

    let mut all = old_keys.clone();
    all.extend(imported);
    assert_eq!(found(&raw(&db), &all), Vec::<&String>::new(), "raw file");
    assert!(logs.lines().count() > 50, "debug logs were captured");
    assert!(logs.contains("profile secrets sealed in place"));
    all.push(kek1_text.trim().to_owned());
    all.push(std::fs::read_to_string(&kek2).unwrap().trim().to_owned());
    assert_eq!(
        found(&logs, &all),
        Vec::<&String>::new(),
        "a secret in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sealed_by_import_and_migrated_by_rotate() {
    let Some(admin) =
        common::postgres_admin_url("postgres_sealed_by_import_and_migrated_by_rotate")
    else {
        return;
    };
    let db = ferrosim_testkit::fresh_postgres(&admin).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let token = seed(&db.url, "http://127.0.0.1:9/cb", 2).await;
    assert!(!token.is_empty());
    let old_keys = clear_keys(&db.url).await;
    let kek = root.join("kek");
    ok(&["keys", "init", "--out", kek.to_str().unwrap()]);
    let pki_dir = root.join("pki");
    let args = [
        "--database-url",
        db.url.as_str(),
        "--data-dir",
        root.to_str().unwrap(),
        "--pki-dir",
        pki_dir.to_str().unwrap(),
        "--kek-file",
        kek.to_str().unwrap(),
    ];
    ok(&[&["init", "--smdp-address", "smdp.example.com"][..], &args].concat());
    let batch = batch_file(root);
    ok(&[
        &[
            "profiles",
            "import",
            "--operator",
            OPERATOR,
            "--type",
            PROFILE_TYPE,
            "--batch",
            batch.to_str().unwrap(),
        ][..],
        &args,
    ]
    .concat());
    let imported: Vec<String> = IMPORTED
        .iter()
        .flat_map(|(k, opc)| [k.to_string(), opc.to_string()])
        .collect();
    let (column, _) = stored(&db.url).await;
    assert_eq!(found(&column, &imported), Vec::<&String>::new());
    assert_eq!(found(&column, &old_keys).len(), 4, "old rows still clear");

    // serve with the KEK seals the clear rows in the background.
    let server = start(
        ServeCommand::new(FERROSIM)
            .database_url(&db.url)
            .data_dir(root)
            .pki_dir(&pki_dir)
            .env("FERROSIM_LOG", "info")
            .env("FERROSIM_KEK_FILE", &kek),
    )
    .await
    .unwrap();
    wait_for_log(&server, "profile secrets sealed in place").await;
    drop(server);
    let (column, _) = stored(&db.url).await;
    assert_eq!(found(&column, &old_keys), Vec::<&String>::new());
    let out = ok(&[&["keys", "rotate"][..], &args].concat());
    assert!(out.contains("4 profile rows re-sealed"), "{out}");
    let (column, _) = stored(&db.url).await;
    let mut all = old_keys;
    all.extend(imported);
    assert_eq!(found(&column, &all), Vec::<&String>::new());
    let status = ok(&[&["keys", "status"][..], &args].concat());
    assert!(
        status.contains("in clear: 0") && status.contains("sealed under data key 2: 4"),
        "{status}"
    );
}
