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

/// A demo run's telemetry becomes an SLA report twice: from the database the
/// demo's SM-DP+ recorded into (the default source) and from the JSON lines
/// `--events-out` wrote; both tell the same story.
#[test]
fn report_sla_from_a_demo_run_database_and_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let events = dir.path().join("events.jsonl");
    let o = ferrosim(&[
        "demo",
        "--devices",
        "3",
        "--concurrency",
        "3",
        "--quiet",
        "--database-url",
        &db,
        "--events-out",
        events.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = std::fs::read_to_string(&events).unwrap();
    assert!(lines.lines().count() >= 3, "{lines}");

    // Yesterday and today, so the demo's events fall in the period even when
    // the run spans midnight.
    let from = utc_date(-1);
    let to = utc_date(1);
    let summaries: Vec<String> = [None, Some(events.to_str().unwrap())]
        .into_iter()
        .map(|file| {
            let out = dir.path().join(if file.is_some() { "file" } else { "db" });
            let mut args = vec![
                "report",
                "sla",
                "--from",
                &from,
                "--to",
                &to,
                "--by",
                "smdp",
                "--out-dir",
                out.to_str().unwrap(),
            ];
            match file {
                Some(f) => args.extend(["--events", f]),
                None => args.extend(["--database-url", &db]),
            }
            let o = ferrosim(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let page = std::fs::read_to_string(out.join("sla.html")).unwrap();
            assert!(page.contains("<svg"));
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    assert!(
        summaries[0].starts_with("3 activations, 3 within 60 s (100.00 %)"),
        "{}",
        summaries[0]
    );
    let strip = |s: &str| s.split("; wrote").next().unwrap().to_owned();
    assert_eq!(strip(&summaries[0]), strip(&summaries[1]));

    // The events went to the telemetry database beside the instance's
    // (demo-telemetry.db), none to the instance's own. Moved there, as a
    // version that kept them in one database left them, the report still
    // finds them.
    let own = ferrosim_store::telemetry_database_url(&db).unwrap();
    assert!(own.ends_with("demo-telemetry.db"), "{own}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use ferrosim_telemetry::{Dictionary, EventQuery, TelemetryStore, Timestamp};
        let options = ferrosim_store::StoreOptions::default();
        let main = ferrosim_store::SqlStore::connect(&db, &options)
            .await
            .unwrap();
        let events_db = ferrosim_store::SqlStore::connect(&own, &options)
            .await
            .unwrap();
        let dict = Dictionary::new();
        let (in_main, in_own) = (main.telemetry(dict.clone()), events_db.telemetry(dict));
        assert!(in_main.query(&EventQuery::all()).await.unwrap().is_empty());
        let events = in_own.query(&EventQuery::all()).await.unwrap();
        assert!(events.len() >= 3, "{events:?}");
        in_main.append(&events).await.unwrap();
        let far = Timestamp::from_millis(i64::MAX / 2);
        assert_eq!(in_own.purge_before(far).await.unwrap(), events.len() as u64);
        main.close().await;
        events_db.close().await;
    });
    let out = dir.path().join("moved");
    let o = ferrosim(&[
        "report",
        "sla",
        "--from",
        &from,
        "--to",
        &to,
        "--by",
        "smdp",
        "--database-url",
        &db,
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        strip(&String::from_utf8_lossy(&o.stdout)),
        strip(&summaries[0])
    );

    // By carrier: the demo's orders belong to the sandbox operator.
    let out = dir.path().join("carrier");
    let o = ferrosim(&[
        "report",
        "sla",
        "--from",
        &from,
        "--to",
        &to,
        "--by",
        "carrier",
        "--database-url",
        &db,
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("sla.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("sandbox-operator,3,3,3,")),
        "{csv}"
    );

    // No instance there: the error names the path it looked at.
    let missing = format!("sqlite:{}", dir.path().join("none.db").display());
    let o = ferrosim(&[
        "report",
        "sla",
        "--from",
        &from,
        "--to",
        &to,
        "--database-url",
        &missing,
        "--out-dir",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("none.db"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The UTC date `days` from now as YYYY-MM-DD (the demo stamps its events
/// with the wall clock).
fn utc_date(days: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + days * 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
