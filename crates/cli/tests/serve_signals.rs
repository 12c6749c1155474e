//! `ferrosim serve` from the outside: it starts with no configuration at all
//! (embedded SQLite, a test PKI generated on first start), shows its
//! resolved configuration, refuses bad settings clearly, and stops cleanly
//! on SIGTERM with exit status 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use ferrosim_testkit::serve::ServeCommand;

fn ferrosim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
}

#[test]
fn starts_with_nothing_configured_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir.path())
        .env("FERROSIM_LOG", "info")
        .spawn()
        .unwrap();
    assert!(
        dir.path().join("ferrosim.db").exists(),
        "embedded SQLite database created"
    );
    assert!(
        dir.path().join("pki/DPtls/dptls.pem").exists(),
        "test PKI generated on first start"
    );
    assert!(server.smdp_address().starts_with("localhost:"));

    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    while server.is_running() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn print_config_shows_the_layers_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferrosim.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9555\"\n[orders]\nttl_hours = 3\n",
    )
    .unwrap();
    let out = ferrosim()
        .args([
            "serve",
            "--print-config",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "/srv/ferrosim",
        ])
        .env("FERROSIM_SMDP_ADDRESS", "smdp.example.com")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:9555\""), "{text}");
    assert!(text.contains("ttl_hours = 3"), "{text}");
    assert!(text.contains("data_dir = \"/srv/ferrosim\""), "{text}");
    assert!(
        text.contains("smdp_address = \"smdp.example.com\""),
        "{text}"
    );

    for (args, env) in [
        (vec!["serve", "--listen", "not-an-address"], None),
        (
            vec!["serve", "--durability", "sometimes", "--print-config"],
            None,
        ),
        (
            vec![
                "serve",
                "--config",
                "/nonexistent/ferrosim.toml",
                "--print-config",
            ],
            None,
        ),
        (
            vec!["serve", "--print-config"],
            Some(("FERROSIM_SMDP_ADDRESS", "has space")),
        ),
        (
            vec![
                "serve",
                "--database-url",
                "mysql://x",
                "--listen",
                "127.0.0.1:0",
            ],
            None,
        ),
    ] {
        let mut cmd = ferrosim();
        cmd.args(&args).env("FERROSIM_DATA_DIR", dir.path());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?}: no message");
    }
}
