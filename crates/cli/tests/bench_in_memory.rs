//! `ferrosim bench --in-memory` (SM-DP+ steps on the in-memory store, LPAs
//! and virtual eUICCs in one process) and `ferrosim bench --json`: tiny runs
//! that check the figures are there and that a seeded run repeats its
//! result counts, and that bad arguments are refused with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Output;

use ferrosim_testkit::cli::{ferrosim_command, output_text};
use serde_json::Value;

fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env_remove("FERROSIM_BENCH_TOKEN")
        .output()
        .expect("running ferrosim")
}

fn json_run(args: &[&str]) -> Value {
    let out = ferrosim(args);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn number(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The same seed gives the same result counts; the figures scripts read
/// are all there and make sense.
#[test]
fn seeded_in_memory_runs_repeat_their_counts() {
    let args = [
        "bench",
        "--in-memory",
        "--downloads",
        "6",
        "--concurrency",
        "3",
        "--profiles-per-device",
        "2",
        "--seed",
        "42",
        "--json",
    ];
    let first = json_run(&args);
    let second = json_run(&args);
    for run in [&first, &second] {
        assert_eq!(run["mode"], "in-memory");
        assert_eq!(run["downloads"], 6);
        assert_eq!(run["completed"], 6, "{run}");
        assert_eq!(run["failed"], 0, "{run}");
        assert_eq!(run["devices"], 3);
        assert_eq!(run["seed"], 42);
        assert!(number(run, "downloads_per_s") > 0.0);
        assert!(number(run, "cpu_us_per_download") > 0.0);
        assert!(number(run, "p99_ms") >= number(run, "p50_ms"));
        assert!(number(run, "ec_us_per_download") > 0.0);
        assert!(number(run, "ec_bound_downloads_per_s") > 0.0);
        assert!(number(run, "ec_bound_ratio") > 0.0);
        assert!(number(run, "ec_share") > 0.0);
        assert!(number(run, "cpu_utilisation") > 0.0);
        // Every timing on every thread: nine rounds before the downloads,
        // one between each two of their eight waves, nine after.
        assert!(number(run, "ec_batches") >= 25.0, "{run}");
        // The bound counts the median batch, which never reads below the
        // fastest one printed beside it.
        assert!(number(run, "ec_us_per_download_fastest") > 0.0);
        assert!(number(run, "ec_us_per_download") >= number(run, "ec_us_per_download_fastest"));
        assert!(
            number(run, "ec_bound_downloads_per_s_fastest")
                >= number(run, "ec_bound_downloads_per_s")
        );
        assert!(number(run, "ec_bound_ratio_fastest") <= number(run, "ec_bound_ratio"));
        // Present (null unless built with the counting allocator).
        assert!(run.get("euicc_heap_bytes_per_device").is_some(), "{run}");
        assert_eq!(run["ec_per_download"]["signs"], 6);
    }
    for key in ["completed", "failed", "devices", "failures"] {
        assert_eq!(first[key], second[key], "{key} differs between seeded runs");
    }
}

#[test]
fn in_memory_text_report_names_the_lower_bound() {
    let out = ferrosim(&[
        "bench",
        "--in-memory",
        "--downloads",
        "1",
        "--concurrency",
        "1",
        "--threads",
        "1",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("completed:        1/1"), "{text}");
    assert!(text.contains("EC lower bound:"), "{text}");
    // One thread: nine rounds before, one between each two of the eight
    // waves, nine after.
    assert!(text.contains("median of 25 batches"), "{text}");
    assert!(text.contains("EC at fastest:"), "{text}");
    assert!(text.contains("eUICC heap:"), "{text}");
}

/// `--json` of the HTTPS benchmark against the embedded SM-DP+.
#[test]
fn https_bench_prints_json() {
    let run = json_run(&["bench", "--downloads", "2", "--concurrency", "2", "--json"]);
    assert_eq!(run["mode"], "https-embedded");
    assert_eq!(run["completed"], 2, "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    assert!(number(&run, "downloads_per_s") > 0.0);
    assert!(number(&run, "cpu_us_per_download") > 0.0);
    assert!(number(&run, "p99_ms") >= number(&run, "p50_ms"));
    assert!(
        run["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{run}"
    );
    // The EC lower bound beside the rate: the same operations per download
    // as in memory, timed on this machine before and after the downloads.
    assert_eq!(run["ec_per_download"]["signs"], 6, "{run}");
    assert_eq!(run["ec_per_download"]["verifies"], 7, "{run}");
    for op in [
        "sign_us",
        "verify_us",
        "key_generation_us",
        "key_agreement_us",
    ] {
        assert!(
            run["ec_costs_us"][op].as_f64().is_some_and(|us| us > 0.0),
            "{op}: {run}"
        );
    }
    let ec_us = number(&run, "ec_us_per_download");
    assert!(ec_us > 0.0);
    let share = number(&run, "ec_share");
    assert!(share > 0.0 && share <= 1.5, "{run}");
    let bound = number(&run, "ec_bound_downloads_per_s");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    assert!((bound - cores * 1e6 / ec_us).abs() < 1e-6 * bound, "{run}");
    let ratio = number(&run, "ec_bound_ratio");
    assert!(
        (ratio - number(&run, "downloads_per_s") / bound).abs() < 1e-9,
        "{run}"
    );
    // Two timings (before and after the downloads) of nine rounds on each core.
    assert_eq!(number(&run, "ec_batches"), 18.0 * cores, "{run}");
}

/// The text report of the HTTPS benchmark prints the EC lower bound too.
#[test]
fn https_bench_report_prints_the_ec_bound() {
    let out = ferrosim(&["bench", "--downloads", "2", "--concurrency", "2"]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("EC lower bound:"), "{text}");
    assert!(text.contains("this run reached"), "{text}");
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--in-memory", "--seed", "abc"], "--seed"),
        (&["bench", "--in-memory", "--seed", "-1"], "-1"),
        (&["bench", "--seed", "1"], "--in-memory"),
        (&["bench", "--threads", "2"], "--in-memory"),
        (&["bench", "--in-memory", "--downloads", "0"], "--downloads"),
        (&["bench", "--in-memory", "--threads", "0"], "--threads"),
        (
            &["bench", "--in-memory", "--profiles-per-device", "0"],
            "--profiles-per-device",
        ),
        (
            &["bench", "--in-memory", "--smdp-address", "localhost:1"],
            "--smdp-address",
        ),
        (
            &["bench", "--in-memory", "--database-url", "sqlite::memory:"],
            "--database-url",
        ),
        (
            &["bench", "--in-memory", "--telemetry", "on"],
            "--telemetry",
        ),
        (&["bench", "--in-memory", "--json", "--json"], "--json"),
    ];
    for (args, names) in cases {
        let out = ferrosim(args);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?} was accepted: {text}");
        assert!(
            text.contains(names),
            "{args:?}: reason should name {names}: {text}"
        );
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}
