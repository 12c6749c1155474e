//! `ferrosim audit` on an instance made by `init`: commands that change the
//! instance record themselves; `verify` says "intact", then names an edited
//! entry and a truncated tail (with the checkpoints kept in a file) and
//! exits 1; `export` writes JSON lines without secrets; bad arguments are
//! refused with the reason, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Output;

use ferrosim_crypto::SoftwareKey;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};

fn ferrosim(dir: &std::path::Path, args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("USER", "alice")
        .output()
        .expect("running ferrosim")
}

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = ferrosim(dir, args);
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(dir: &std::path::Path, args: &[&str], expected: &str) -> String {
    let out = ferrosim(dir, args);
    let all = text(&out);
    assert!(!out.status.success(), "{args:?} should fail: {all}");
    assert!(!all.contains("panicked"), "{args:?} panicked: {all}");
    assert!(
        all.contains(expected),
        "{args:?}: expected `{expected}` in: {all}"
    );
    all
}

async fn tamper(dir: &std::path::Path, sql: &str) {
    let url = format!("sqlite:{}", dir.join("ferrosim.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_export_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    ok(&dir, &["init", "--smdp-address", "localhost:8443"]);
    ok(&dir, &["operator", "add", "--id", "acme"]);
    let created = ok(
        &dir,
        &[
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ],
    );
    let token = created.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("fsk_"));
    ok(&dir, &["operator", "list"]); // reads are not recorded

    let verified = ok(&dir, &["audit", "verify"]);
    assert!(
        verified.contains("2 entries (last 2), 0 checkpoints: intact"),
        "{verified}"
    );
    let export = ok(&dir, &["audit", "export"]);
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["action"], "operator.add");
    assert_eq!(lines[0]["subject"], "acme");
    assert_eq!(lines[0]["actor"], "cli:alice");
    assert_eq!(lines[1]["action"], "api-token.create");
    assert!(!export.contains(&token) && !export.contains(&token[4..]));

    // A checkpoint, kept in the database and in a file.
    let key = SoftwareKey::generate().unwrap();
    let key_file = tmp.path().join("audit-key.pem");
    std::fs::write(&key_file, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let cps = tmp.path().join("checkpoints.jsonl");
    let (k, c) = (key_file.to_str().unwrap(), cps.to_str().unwrap());
    ok(&dir, &["operator", "remove", "--id", "acme"]);
    let signed = ok(&dir, &["audit", "checkpoint", "--key", k, "--out", c]);
    assert!(signed.contains("checkpoint of entry 3 signed"), "{signed}");
    assert!(ok(&dir, &["audit", "verify", "--key", k]).contains("1 checkpoints: intact"));

    // Someone with the database file edits entry 1: named, exit status 1.
    tamper(
        &dir,
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
         UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 1",
    )
    .await;
    let out = ferrosim(&dir, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("TAMPERED: entry 1 was edited"),
        "{}",
        text(&out)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&ferrosim(&dir, &["audit", "verify", "--json"]).stdout).unwrap();
    assert_eq!(report["problems"][0]["kind"], "edited");
    tamper(
        &dir,
        "UPDATE audit_log SET actor = 'cli:alice' WHERE seq = 1",
    )
    .await;
    ok(&dir, &["audit", "verify"]);

    // The tail and the checkpoints in the database removed: the copy of the
    // checkpoints kept in the file still shows it.
    tamper(
        &dir,
        "DELETE FROM audit_log WHERE seq = 3; DELETE FROM audit_checkpoints",
    )
    .await;
    ok(&dir, &["audit", "verify"]);
    let all = refused(
        &dir,
        &["audit", "verify", "--checkpoints", c, "--key", k],
        "TAMPERED",
    );
    assert!(
        all.contains("the log was truncated: a checkpoint names entry 3, the last entry is 2"),
        "{all}"
    );

    // Garbage.
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, "not json\n").unwrap();
    let g = garbage.to_str().unwrap();
    refused(
        &dir,
        &["audit", "verify", "--checkpoints", g],
        "line 1: not a checkpoint",
    );
    refused(
        &dir,
        &["audit", "verify", "--checkpoints", "/nonexistent/cps"],
        "checkpoints file",
    );
    refused(&dir, &["audit", "verify", "--key", g], "audit key");
    refused(&dir, &["audit", "checkpoint"], "--key");
    refused(&dir, &["audit", "export", "--after", "x"], "--after");
    refused(&dir, &["audit", "frobnicate"], "unrecognized subcommand");
}

/// `serve` with `[audit] checkpoint_key`: signs checkpoints periodically,
/// in the database and in `checkpoint_file`, which `audit verify` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_checkpoints_periodically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    ok(&dir, &["init", "--smdp-address", "localhost:8443"]);
    ok(&dir, &["operator", "add", "--id", "acme"]);
    let key = SoftwareKey::generate().unwrap();
    let key_file = tmp.path().join("audit-key.pem");
    std::fs::write(&key_file, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let cps = tmp.path().join("cps.jsonl");
    let config = tmp.path().join("ferrosim.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\ncheckpoint_key = {:?}\ncheckpoint_interval_secs = 1\ncheckpoint_file = {:?}\n",
            key_file.display().to_string(),
            cps.display().to_string()
        ),
    )
    .unwrap();
    let server = tokio::task::spawn_blocking({
        let (dir, config) = (dir.clone(), config.clone());
        move || {
            ferrosim_testkit::serve::ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
                .data_dir(&dir)
                .config(&config)
                .spawn()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let mut written = String::new();
    for _ in 0..100 {
        written = std::fs::read_to_string(&cps).unwrap_or_default();
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(server);
    let cp: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(cp["seq"], 1, "{written}");
    let (k, c) = (key_file.to_str().unwrap(), cps.to_str().unwrap());
    let out = ok(&dir, &["audit", "verify", "--checkpoints", c, "--key", k]);
    assert!(
        out.contains("1 entries (last 1), 1 checkpoints: intact"),
        "{out}"
    );
}
