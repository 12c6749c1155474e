//! `[access]` and `[audit]` of the instance configuration: bad values stop
//! `serve` before it listens, with the setting named, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_testkit::cli::{ferrosim_command, output_text};

#[test]
fn bad_access_and_audit_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, b"not a key").unwrap();
    for (config, expected) in [
        ("[access]\nrate_per_sec = -1.0\n", "rate_per_sec"),
        ("[access]\nrate_per_sec = nan\n", "rate_per_sec"),
        ("[access]\nburst = 0\n", "burst"),
        ("[access]\nlockout_secs = 0\n", "lockout_secs"),
        ("[access]\nmax_failures = \"many\"\n", "max_failures"),
        ("[access]\nper_eid = true\n", "unknown field"),
        ("[access]\neid_rate_per_sec = 0.0\n", "eid_rate_per_sec"),
        ("[access]\neid_burst = 0\n", "eid_burst"),
        ("[access]\neid_max_failures = -3\n", "eid_max_failures"),
        (
            &format!(
                "[audit]\ncheckpoint_key = {:?}\n",
                garbage.display().to_string()
            ),
            "audit key",
        ),
        (
            "[audit]\ncheckpoint_key = \"/nonexistent/key.pem\"\n",
            "/nonexistent/key.pem",
        ),
        ("[audit]\nenabled = \"yes\"\n", "enabled"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, config).unwrap();
        let out = ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(!out.status.success(), "{config}: {text}");
        assert_ne!(out.status.code(), Some(101), "panic: {text}");
        assert!(
            text.contains(expected),
            "{config}: expected `{expected}` in {text}"
        );
        assert!(!text.contains("listening on"), "{config}: {text}");
    }
}
