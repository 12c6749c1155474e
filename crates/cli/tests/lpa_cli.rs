//! `ferrosim euicc …` and `ferrosim lpa …` as a user runs them: a virtual
//! eUICC created from a test PKI, a profile downloaded over HTTPS from a
//! loopback SM-DP+ trusting only the test CI, profile management, and clear
//! errors (non-zero exit, no panic) for every kind of bad argument.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("FERROSIM_LOG", "error")
        .output()
        .expect("running ferrosim")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = ferrosim(args);
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        text(&out)
    );
    text(&out)
}

/// Fails with a message and a non-zero exit, without panicking.
fn refused(args: &[&str], expected: &str) {
    let out = ferrosim(args);
    let t = text(&out);
    assert!(!out.status.success(), "ferrosim {args:?} succeeded: {t}");
    assert!(!t.contains("panicked"), "ferrosim {args:?} panicked: {t}");
    assert!(
        t.contains(expected),
        "ferrosim {args:?}: expected `{expected}` in: {t}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_euicc_lifecycle_through_the_cli() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("euicc.json");
    let ci = dir.path().join("ci.pem");
    std::fs::write(&ci, smdp.ci_pem()).unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let pki = path(&smdp.pki_dir).to_owned();
    let transport = format!("inprocess:{},{pki}", path(&state));
    let code = format!("1${}${matching_id}", smdp.address);

    // The CLI blocks on its own runtime: run it off the test's.
    let (iccid2, eid2) = (iccid.clone(), eid.clone());
    tokio::task::spawn_blocking(move || {
        let (iccid, eid) = (iccid2, eid2);
        let lpa = |rest: &[&str]| -> Vec<String> {
            let mut v = vec!["lpa", "--transport", &transport, "--eid", &eid];
            v.extend_from_slice(rest);
            v.into_iter().map(str::to_owned).collect()
        };
        let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

        let out = ok(&[
            "euicc",
            "init",
            "--identity",
            &pki,
            "--eid",
            &eid,
            "--state",
            path(&state),
        ]);
        assert!(out.contains(&eid), "{out}");
        refused(
            &[
                "euicc",
                "init",
                "--identity",
                &pki,
                "--eid",
                &eid,
                "--state",
                path(&state),
            ],
            "exists already",
        );

        let out = run(lpa(&["chip-info"]));
        assert!(out.contains(&eid), "{out}");
        assert!(run(lpa(&["profile", "list"])).contains("no profile installed"));

        let out = run(lpa(&[
            "--ca",
            path(&ci),
            "profile",
            "download",
            "--activation-code",
            &code,
        ]));
        assert!(out.contains(&format!("installed ICCID {iccid}")), "{out}");
        assert!(
            out.contains("LoadBoundProfilePackage"),
            "timings are shown: {out}"
        );

        let out = run(lpa(&["profile", "list"]));
        assert!(out.contains(&iccid) && out.contains("disabled"), "{out}");
        let out = run(lpa(&["profile", "enable", &iccid]));
        assert!(out.contains("notification(s) pending"), "{out}");
        assert!(run(lpa(&["profile", "list"])).contains("enabled"));
        let out = run(lpa(&["notification", "list"]));
        assert!(
            out.contains("enable") && out.contains(&smdp_address(&code)),
            "{out}"
        );

        // The state survives between runs; an enabled profile cannot be deleted.
        let args = lpa(&["profile", "delete", &iccid]);
        refused(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            "profileNotInDisabledState",
        );
        run(lpa(&["profile", "disable", &iccid]));
        run(lpa(&["profile", "delete", &iccid]));
        assert!(run(lpa(&["profile", "list"])).contains("no profile installed"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_confirmation_code_postpones_and_says_what_to_pass() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, matching_id) = smdp.order(None, Some("4711")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("euicc.json");
    let ci = dir.path().join("ci.pem");
    std::fs::write(&ci, smdp.ci_pem()).unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let pki = path(&smdp.pki_dir).to_owned();
    let transport = format!("inprocess:{},{pki}", path(&state));
    let code = format!("1${}${matching_id}", smdp.address);

    tokio::task::spawn_blocking(move || {
        ok(&[
            "euicc",
            "init",
            "--identity",
            &pki,
            "--eid",
            &eid,
            "--state",
            path(&state),
        ]);
        let download = |extra: &[&str]| -> Vec<String> {
            let mut v = vec![
                "lpa",
                "--transport",
                &transport,
                "--eid",
                &eid,
                "--ca",
                path(&ci),
                "profile",
                "download",
                "--activation-code",
                &code,
            ];
            v.extend_from_slice(extra);
            v.into_iter().map(str::to_owned).collect()
        };
        let args = download(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Standard input is not a terminal here: nobody to ask.
        refused(&args, "--confirmation-code");
        refused(&args, "postponed");
        // The order survived: the same activation code with the code installs.
        let args = download(&["--confirmation-code", "4711"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(&args);
        assert!(out.contains(&format!("installed ICCID {iccid}")), "{out}");
    })
    .await
    .unwrap();
}

fn smdp_address(code: &str) -> String {
    code.split('$').nth(1).unwrap_or_default().to_owned()
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let bad_state = dir.path().join("bad.json");
    std::fs::write(&bad_state, b"{not json").unwrap();
    let inproc = |state: &Path| format!("inprocess:{},{}", path(state), path(dir.path()));

    refused(
        &["lpa", "--transport", "garbage", "chip-info"],
        "unknown transport",
    );
    refused(
        &["lpa", "--transport", "inprocess:onlyone", "chip-info"],
        "STATE_FILE,IDENTITY_DIR",
    );
    refused(
        &["lpa", "--transport", "inprocess:,", "chip-info"],
        "STATE_FILE,IDENTITY_DIR",
    );
    refused(&["lpa", "--block-size", "0", "chip-info"], "1..=255");
    refused(&["lpa", "--block-size", "x", "chip-info"], "invalid value");
    refused(
        &["lpa", "--transport", &inproc(&missing), "chip-info"],
        "identity",
    );
    refused(
        &["lpa", "--transport", &inproc(&bad_state), "chip-info"],
        "identity",
    );
    refused(&["lpa", "profile", "enable", "123"], "is not an ICCID");
    refused(
        &["lpa", "profile", "enable", "89440000000000000011"],
        "check digit",
    );
    refused(
        &["lpa", "profile", "download", "--activation-code", "garbage"],
        "invalid activation code",
    );
    refused(
        &[
            "lpa",
            "profile",
            "download",
            "--activation-code",
            "1$a.example$X",
        ],
        "--ca",
    );
    refused(
        &[
            "lpa",
            "--insecure",
            "profile",
            "download",
            "--activation-code",
            "1$a.example$X$$1",
        ],
        "confirmation code",
    );
    refused(
        &[
            "lpa",
            "--ca",
            "/nonexistent/ci.pem",
            "notification",
            "process",
        ],
        "/nonexistent/ci.pem",
    );
    refused(
        &["lpa", "notification", "process", "--attempts", "0"],
        "invalid value",
    );
    refused(&["lpa", "notification", "remove", "x"], "invalid value");
    refused(
        &[
            "euicc",
            "init",
            "--identity",
            path(dir.path()),
            "--state",
            path(&missing),
        ],
        "identity",
    );
    refused(
        &[
            "euicc",
            "vpcd",
            "--identity",
            path(dir.path()),
            "--state",
            path(&missing),
            "--addr",
            "nonsense",
        ],
        "invalid vpcd address",
    );
    refused(&["euicc", "vpcd", "--state", "x"], "--identity");
}
