//! `ferrosim bench` exits non-zero when downloads failed (and zero when all
//! succeeded); `ferrosim version` prints the version and what the build has.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Output};

use ferrosim_testkit::{OPERATOR, PROFILE_TYPE, TestSmdp, TestSmdpOptions};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("FERROSIM_LOG", "error")
        .env_remove("FERROSIM_DATABASE_URL")
        .env_remove("FERROSIM_BENCH_TOKEN")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fails_when_downloads_fail() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let ci = smdp.pki_dir.join("CI/ci.pem");
    let dir = tempfile::tempdir().unwrap();
    // eUICCs of another CI: the SM-DP+ does not trust them (nor they it).
    let foreign = dir.path().join("foreign");
    let out = ferrosim(&[
        "pki",
        "init",
        "--out",
        foreign.to_str().unwrap(),
        "--euiccs",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let bench = |pki: &std::path::Path| {
        let args = [
            "bench",
            "--downloads",
            "2",
            "--concurrency",
            "1",
            "--smdp-address",
            &smdp.address,
            "--ca",
            ci.to_str().unwrap(),
            "--token",
            &smdp.token,
            "--operator",
            OPERATOR,
            "--profile-type",
            PROFILE_TYPE,
            "--pki",
            pki.to_str().unwrap(),
        ];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ferrosim(&args)
            })
            .await
            .unwrap()
        }
    };
    let out = bench(&foreign).await;
    let t = text(&out);
    assert!(
        !out.status.success(),
        "bench with failed downloads exited 0: {t}"
    );
    assert!(t.contains("2 of 2 downloads failed"), "{t}");
    assert!(!t.contains("panicked"), "{t}");

    let out = bench(&smdp.pki_dir).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn version_lists_what_the_build_has() {
    let out = ferrosim(&["version"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        t.starts_with(&format!("ferrosim {}\n", env!("CARGO_PKG_VERSION"))),
        "{t}"
    );
    for has in [
        "ES9+",
        "ES2+",
        "SQLite",
        "PostgreSQL",
        "PKCS#11",
        "PC/SC",
        "vpcd",
    ] {
        assert!(t.contains(has), "`{has}` missing from: {t}");
    }
    for lacks in ["eIM", "SGP.32", "SM-DS", "telemetry"] {
        assert!(
            !t.contains(lacks),
            "`{lacks}` is not built, yet listed: {t}"
        );
    }
}
