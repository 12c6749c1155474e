//! What operators read when something is wrong: logs without terminal
//! colours when stderr is no terminal, JSON logs on request, failed ES2+
//! authentications logged without the token, and errors that name what
//! they are about (the address in use, the ICCID already taken, the valid
//! values of a setting).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use ferrosim_testkit::serve::ServeCommand;

const PACKAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"
);

fn ferrosim(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrosim"));
    command.args(args).env("RUST_BACKTRACE", "0");
    let logs = ["FERROSIM_LOG", "FERROSIM_LOG_FORMAT"];
    for var in ferrosim_testkit::cli::INSTANCE_ENV.iter().chain(&logs) {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("running ferrosim")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = ferrosim(args, &[("FERROSIM_LOG", "warn")]);
    assert!(out.status.success(), "ferrosim {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let out = ferrosim(args, env);
    let err = stderr(&out);
    assert!(!out.status.success(), "ferrosim {args:?} succeeded");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(expected),
        "ferrosim {args:?}: `{expected}` not in {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn logs_have_no_colours_off_a_terminal_and_json_on_request() {
    let root = tempfile::tempdir().unwrap();
    let text_dir = root.path().join("text");
    let out = ferrosim(
        &["init", "--data-dir", s(&text_dir)],
        &[("FERROSIM_LOG", "info")],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("generated a test PKI"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes in a piped log: {err:?}"
    );

    let json_dir = root.path().join("json");
    let out = ferrosim(
        &["init", "--data-dir", s(&json_dir)],
        &[("FERROSIM_LOG", "info"), ("FERROSIM_LOG_FORMAT", "json")],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["level"] == "INFO"
            && v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("generated a test PKI"))),
        "{err}"
    );

    refused(
        &["version"],
        &[("FERROSIM_LOG_FORMAT", "xml")],
        "FERROSIM_LOG_FORMAT must be one of text, json, not `xml`",
    );
    refused(
        &["version"],
        &[("FERROSIM_LOG", "[[[")],
        "FERROSIM_LOG `[[[",
    );
}

#[test]
fn errors_name_the_address_the_iccid_and_the_valid_values() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dd = s(&data);

    // The address in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &["serve", "--listen", &addr, "--data-dir", dd],
        &[],
        &format!("cannot listen on {addr}"),
    );

    ok(&[
        "init",
        "--data-dir",
        dd,
        "--smdp-address",
        "smdp.example.com",
    ]);
    ok(&["operator", "add", "--id", "acme", "--data-dir", dd]);
    refused(
        &[
            "profile-type",
            "import",
            "--operator",
            "acme",
            "--name",
            "t",
            "--package",
            PACKAGE,
            "--class",
            "bogus",
            "--data-dir",
            dd,
        ],
        &[],
        "test, provisioning or operational",
    );
    ok(&[
        "profile-type",
        "import",
        "--operator",
        "acme",
        "--name",
        "t",
        "--package",
        PACKAGE,
        "--data-dir",
        dd,
    ]);
    let generate = |first: &str, count: &str| {
        vec![
            "profiles".to_owned(),
            "generate".into(),
            "--operator".into(),
            "acme".into(),
            "--type".into(),
            "t".into(),
            "--count".into(),
            count.into(),
            "--first-iccid".into(),
            first.into(),
            "--first-imsi".into(),
            "001-01-0000000001".into(),
            "--data-dir".into(),
            dd.into(),
        ]
    };
    let args = generate("8944000000000000019", "3");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Overlapping range: the ICCID already taken is named.
    let args = generate("8944000000000000001", "3");
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        "ICCID 8944000000000000019, 8944000000000000027 already in the database",
    );
    let csv = root.path().join("batch.csv");
    std::fs::write(
        &csv,
        "iccid,imsi,ki,opc\n8944000000000000027,001010000009999,000102030405060708090A0B0C0D0E0F,F0E0D0C0B0A090807060504030201000\n",
    )
    .unwrap();
    refused(
        &[
            "profiles",
            "import",
            "--operator",
            "acme",
            "--type",
            "t",
            "--batch",
            s(&csv),
            "--data-dir",
            dd,
        ],
        &[],
        "ICCID 8944000000000000027 already in the database",
    );
    refused(
        &["serve", "--durability", "sometimes", "--data-dir", dd],
        &[],
        "durability must be `full` or `normal`",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_es2_authentications_are_logged_without_the_token() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
                .data_dir(&data)
                .spawn()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let ci = std::fs::read(data.join("pki/CI/ci.pem")).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ci).unwrap()])
        .build()
        .unwrap();
    let url = format!("{}/gsma/rsp2/es2plus/downloadOrder", server.base_url());
    let secret = "fst_0123456789abcdef-not-a-real-token";
    let body = serde_json::json!({
        "header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "c1"},
        "profileType": "t"
    });
    let wrong = http
        .post(&url)
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let missing = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let mut log = String::new();
    for _ in 0..50 {
        log = server.log();
        if log.matches("ES2+ authentication failed").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        log.matches("ES2+ authentication failed").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("unknown token") && log.contains("missing bearer token"),
        "{log}"
    );
    assert!(
        log.contains("downloadOrder"),
        "the function is named: {log}"
    );
    assert!(!log.contains(secret), "the token was logged: {log}");
}
