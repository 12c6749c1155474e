//! `ferrosim bench --eim`: tiny runs in memory and over HTTPS (both ESipa
//! bindings, SQLite) whose `--json` figures must hold every package
//! completed, verified and stored, with no failure; and bad arguments
//! refused with the rule they break. No timing is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Output;

use ferrosim_testkit::cli::{ferrosim_command, output_text};
use serde_json::Value;

fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env_remove("FERROSIM_DATABASE_URL")
        .output()
        .expect("running ferrosim")
}

fn json_run(args: &[&str]) -> Value {
    let out = ferrosim(args);
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn number(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every package asked for completed and is stored as a verified result;
/// the figures scripts read are there and make sense.
fn check(run: &Value, mode: &str, packages: u64, devices: u64, per_session: u64) {
    assert_eq!(run["mode"], mode, "{run}");
    assert_eq!(run["packages"], packages, "{run}");
    assert_eq!(run["completed"], packages, "{run}");
    assert_eq!(run["stored_results"], packages, "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    assert_eq!(run["failures"], Value::Array(Vec::new()), "{run}");
    assert_eq!(run["devices"], devices, "{run}");
    assert_eq!(run["packages_per_session"], per_session, "{run}");
    assert_eq!(
        run["operation_mix"],
        serde_json::json!(["disable", "enable", "listProfileInfo"])
    );
    assert_eq!(run["ec_per_package"]["signs"], 2, "{run}");
    assert_eq!(run["ec_per_package"]["verifies"], 2, "{run}");
    for key in [
        "packages_per_s",
        "wall_s",
        "ec_us_per_package",
        "ec_bound_packages_per_s",
        "target_packages_per_s",
    ] {
        assert!(number(run, key) > 0.0, "{key} in {run}");
    }
    // Process and thread CPU are read in nanoseconds: even a tiny run
    // shows some on each side.
    assert!(number(run, "cpu_us_per_package") > 0.0, "{run}");
    assert!(number(run, "eim_cpu_us_per_package") > 0.0, "{run}");
    assert!(number(run, "device_cpu_us_per_package") > 0.0, "{run}");
    assert!(number(run, "p50_ms") > 0.0, "{run}");
    assert!(number(run, "p99_ms") >= number(run, "p50_ms"), "{run}");
    assert!(number(run, "max_ms") >= number(run, "p99_ms"), "{run}");
}

#[test]
fn in_memory_runs_every_package_through_the_eim() {
    let run = json_run(&[
        "bench",
        "--eim",
        "--in-memory",
        "--packages",
        "20",
        "--devices",
        "3",
        "--packages-per-session",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    check(&run, "eim-in-memory", 20, 3, 2);
    assert_eq!(run["threads"], 2);
    // In memory the eIM's share is thread CPU time (nanoseconds).
    assert!(number(&run, "eim_cpu_us_per_package") > 0.0, "{run}");
}

#[test]
fn https_runs_every_package_through_serve_on_both_bindings() {
    for (binding, per_session) in [("asn1", "1"), ("json", "3")] {
        let run = json_run(&[
            "bench",
            "--eim",
            "--packages",
            "14",
            "--devices",
            "4",
            "--packages-per-session",
            per_session,
            "--binding",
            binding,
            "--json",
        ]);
        check(&run, "eim-https", 14, 4, per_session.parse().unwrap());
        let setup = run["setup"].as_str().unwrap();
        assert!(setup.contains("SQLite"), "{setup}");
        assert!(
            setup.contains(if binding == "asn1" { "ASN.1" } else { "JSON" }),
            "{setup}"
        );
    }
}

#[test]
fn text_report_names_the_rate_and_the_eims_cpu() {
    let out = ferrosim(&[
        "bench",
        "--eim",
        "--in-memory",
        "--packages",
        "6",
        "--devices",
        "2",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("packages/s"), "{text}");
    assert!(text.contains("eIM +"), "{text}");
    assert!(text.contains("6/6"), "{text}");
}

#[test]
fn bad_arguments_are_refused_with_the_rule() {
    let cases: [(&[&str], &str); 9] = [
        (&["--eim", "--packages", "0"], "--packages"),
        (&["--eim", "--devices", "0"], "--devices"),
        (
            &["--eim", "--in-memory", "--packages", "5", "--devices", "10"],
            "every device needs at least one package",
        ),
        (
            &["--eim", "--packages-per-session", "65"],
            "--packages-per-session",
        ),
        (&["--eim", "--packages", "many"], "--packages"),
        (&["--eim", "--binding", "xml"], "--binding"),
        (&["--packages", "5"], "--eim"),
        (&["--eim", "--downloads", "5"], "--downloads"),
        (&["--eim", "--in-memory", "--binding", "json"], "--binding"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let out = ferrosim(&all);
        let text = output_text(&out);
        assert!(!out.status.success(), "{all:?} should fail: {text}");
        assert!(!text.contains("panicked"), "{all:?} panicked: {text}");
        assert!(
            text.contains(expected),
            "{all:?}: expected `{expected}` in: {text}"
        );
    }
}
