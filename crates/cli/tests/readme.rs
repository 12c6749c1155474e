//! README.md's "Running an SM-DP+" section, run as written by
//! `.ci/readme-running-smdp` against the `ferrosim` binary cargo built: the
//! first start, the administration commands, the batch file format shown,
//! the activation code naming the port the server really listens on, the
//! file modes promised, and a download with that activation code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

#[test]
fn running_an_smdp_as_written() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/readme-running-smdp");
    // A free port instead of the README's 8443 (which may be taken here).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new("bash")
        .arg(&script)
        .env("FERROSIM_BIN", env!("CARGO_BIN_EXE_ferrosim"))
        .env("PORT", port.to_string())
        .env("FERROSIM_LOG", "warn")
        .env_remove("FERROSIM_DATA_DIR")
        .env_remove("FERROSIM_DATABASE_URL")
        .env_remove("FERROSIM_CONFIG")
        .env_remove("FERROSIM_SMDP_ADDRESS")
        .env_remove("FERROSIM_PKI_DIR")
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display(),
        out.status
    );
    assert!(stdout.contains("all commands ran as written"), "{stdout}");
}
