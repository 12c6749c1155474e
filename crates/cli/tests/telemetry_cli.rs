//! `ferrosim slo …` and `ferrosim report sla …` on files, with garbage.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .output()
        .unwrap()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn slo_rules_writes_the_checked_in_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rules.yaml");
    let slo = repo("deploy/slo/ferrosim.yaml");
    let o = ferrosim(&[
        "slo",
        "rules",
        "--slo",
        slo.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(repo("deploy/prometheus/ferrosim-slo-rules.yaml")).unwrap()
    );
    let o = ferrosim(&["slo", "export", "--slo", slo.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("apiVersion: openslo/v1"));
    let o = ferrosim(&["slo", "dashboard"]);
    assert!(o.status.success());
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
}

#[test]
fn slo_rules_refuses_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: 7\n",
    )
    .unwrap();
    let o = ferrosim(&["slo", "rules", "--slo", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("OpenSLO"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ferrosim(&["slo", "rules", "--slo", "/nonexistent/slo.yaml"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("reading /nonexistent/slo.yaml"));
}

#[test]
fn report_sla_writes_html_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let events = repo("crates/telemetry/testdata/sla-events.jsonl");
    let o = ferrosim(&[
        "report",
        "sla",
        "--from",
        "2026-11-24",
        "--to",
        "2026-11-26",
        "--by",
        "carrier",
        "--events",
        events.to_str().unwrap(),
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("48 activations, 43 within 60 s"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(dir.path().join("sla.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("globex"));
    let csv = std::fs::read_to_string(dir.path().join("sla.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sla.json")).unwrap())
            .unwrap();
    assert_eq!(json["by"], "carrier");
}

#[test]
fn report_sla_refuses_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("events.jsonl");
    std::fs::write(&garbage, "{\"at\":1}\nnonsense\n").unwrap();
    let events = repo("crates/telemetry/testdata/sla-events.jsonl");
    let out = dir.path().join("out");
    let (ev, od) = (events.to_str().unwrap(), out.to_str().unwrap());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--from", "yesterday", "--to", "2026-11-26", "--events", ev],
            "--from",
        ),
        (
            vec!["--from", "2026-11-24", "--to", "2026-13-01", "--events", ev],
            "--to",
        ),
        (
            vec![
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-26",
                "--by",
                "imei",
                "--events",
                ev,
            ],
            "--by",
        ),
        (
            vec!["--from", "2026-11-26", "--to", "2026-11-24", "--events", ev],
            "must end after",
        ),
        (
            vec![
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-26",
                "--events",
                garbage.to_str().unwrap(),
            ],
            "line 1",
        ),
        (
            vec![
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-26",
                "--events",
                "/nonexistent",
            ],
            "reading /nonexistent",
        ),
        (
            vec![
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-26",
                "--target-success",
                "2",
                "--events",
                ev,
            ],
            "targets",
        ),
    ];
    for (args, expect) in cases {
        let mut all = vec!["report", "sla", "--out-dir", od];
        all.extend(args);
        let o = ferrosim(&all);
        assert!(!o.status.success(), "{all:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{all:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
