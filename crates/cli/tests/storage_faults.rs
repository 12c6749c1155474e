//! `ferrosim serve` and storage faults: a damaged database is refused at
//! start with the cause, instead of a server that says it listens and then
//! fails every call.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use ferrosim_testkit::serve::ServeCommand;

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

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
