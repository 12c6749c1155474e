//! SLOs: OpenSLO in and out, the generated rules checked and exercised by
//! `promtool` (Debian's `prometheus` package) on synthetic series that must
//! and must not fire. Without promtool these tests fail unless
//! FERROSIM_SKIP_PROMTOOL=1.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrosim_telemetry::slo::{
    DEFAULT_SLOS, SloError, export_openslo, generate_rules, parse_openslo,
};

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn default_slos_parse_and_round_trip_through_openslo() {
    let slos = parse_openslo(DEFAULT_SLOS).unwrap();
    let names: Vec<&str> = slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "activation-success-60s",
            "es9plus-availability",
            "registration-success"
        ]
    );
    assert_eq!(slos[0].objective, 0.99);
    assert_eq!(
        slos[1].indicator.name, "es9plus-execution-errors",
        "indicatorRef resolved"
    );
    let exported = export_openslo(&slos).unwrap();
    assert_eq!(parse_openslo(&exported).unwrap(), slos);
}

#[test]
fn checked_in_rules_are_the_generated_ones() {
    let generated = generate_rules(&parse_openslo(DEFAULT_SLOS).unwrap()).unwrap();
    let path = repo_file("deploy/prometheus/ferrosim-slo-rules.yaml");
    if std::env::var("FERROSIM_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == generated,
        "deploy/prometheus/ferrosim-slo-rules.yaml is stale: run `ferrosim slo rules --slo deploy/slo/ferrosim.yaml --out deploy/prometheus/ferrosim-slo-rules.yaml`"
    );
}

#[test]
fn garbage_slo_files_get_typed_errors() {
    let good = parse_openslo(DEFAULT_SLOS).unwrap();
    let one = export_openslo(&good[..1]).unwrap();
    type Expect = fn(&SloError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        ("::: not yaml [".to_owned(), |e| {
            matches!(e, SloError::Yaml(_))
        }),
        ("".to_owned(), |e| matches!(e, SloError::Empty)),
        (one.replace("openslo/v1", "openslo/v2"), |e| {
            matches!(e, SloError::ApiVersion(_))
        }),
        (one.replace("kind: SLO", "kind: AlertPolicy"), |e| {
            matches!(e, SloError::Kind(_))
        }),
        (one.replace("target: 0.99", "target: 1.5"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (one.replace("[{{.window}}]", "[5m]"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (one.replace("duration: 30d", "duration: 4w"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (one.replace("type: Prometheus", "type: Datadog"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (
            one.replace("name: activation-success-60s", "name: Bad Name"),
            |e| matches!(e, SloError::Invalid { .. }),
        ),
        (one.replace("Occurrences", "Timeslices"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (one.replace("isRolling: true", "isRolling: false"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (one.replace("counter: true", "counter: false"), |e| {
            matches!(e, SloError::Invalid { .. })
        }),
        (
            one.replace("service: ferrosim", "service: Bad_Service"),
            |e| matches!(e, SloError::Invalid { .. }),
        ),
        (one.replace("total:", "totally:"), |e| {
            matches!(e, SloError::Yaml(_))
        }),
    ];
    for (yaml, ok) in cases {
        match parse_openslo(&yaml) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => assert!(ok(&e), "unexpected error {e} for\n{yaml}"),
        }
    }
}

/// promtool, or `None` when FERROSIM_SKIP_PROMTOOL=1 says it may be absent.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var("FERROSIM_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("promtool not found: skipped (FERROSIM_SKIP_PROMTOOL=1)");
        return None;
    }
    panic!(
        "promtool not found: install Debian's `prometheus` package, or set FERROSIM_SKIP_PROMTOOL=1"
    );
}

fn run(promtool: &str, args: &[&str], dir: &Path) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_rules() {
    let Some(promtool) = promtool() else { return };
    run(
        promtool,
        &[
            "check",
            "rules",
            repo_file("deploy/prometheus/ferrosim-slo-rules.yaml")
                .to_str()
                .unwrap(),
        ],
        Path::new("."),
    );
}

const LABELS: &str = r#"sloth_id: ferrosim-activation-success-60s
              sloth_service: ferrosim
              sloth_slo: activation-success-60s"#;

fn expected_alert(severity: &str) -> String {
    let summary = if severity == "page" {
        "ferrosim SLO activation-success-60s is burning its error budget fast"
    } else {
        "ferrosim SLO activation-success-60s is burning its error budget"
    };
    let slos = parse_openslo(DEFAULT_SLOS).unwrap();
    format!(
        r#"          - exp_labels:
              {LABELS}
              sloth_severity: {severity}
            exp_annotations:
              summary: "{summary}"
              title: "(page/ticket: {severity}) ferrosim activation-success-60s SLO error budget burn rate is over the expected"
              description: {:?}
"#,
        slos[0].description
    )
}

/// One promtool test group: `minutes` of samples every minute, activations
/// counted by `total` and `good` (promtool series notation), alerts
/// expected at `eval`.
fn case(name: &str, total: &str, good: &str, eval: &str, page: bool, ticket: bool) -> String {
    let alerts = |fires: bool, severity: &str| {
        if fires {
            format!("\n{}", expected_alert(severity))
        } else {
            " []\n".to_owned()
        }
    };
    format!(
        r#"  # {name}
  - interval: 1m
    input_series:
      - series: 'ferrosim_activations_total{{kind="order_download",carrier="acme",outcome="success"}}'
        values: '{total}'
      - series: 'ferrosim_activation_duration_seconds_bucket{{kind="order_download",carrier="acme",le="60.0"}}'
        values: '{good}'
    alert_rule_test:
      - eval_time: {eval}
        alertname: ActivationSuccess60sBurnRatePage
        exp_alerts:{}      - eval_time: {eval}
        alertname: ActivationSuccess60sBurnRateTicket
        exp_alerts:{}"#,
        alerts(page, "page"),
        alerts(ticket, "ticket"),
    )
}

#[test]
fn promtool_burn_rate_alerts_fire_when_they_must_and_only_then() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_file("deploy/prometheus/ferrosim-slo-rules.yaml"),
        dir.path().join("rules.yaml"),
    )
    .unwrap();
    let mut tests = String::from("rule_files:\n  - rules.yaml\nevaluation_interval: 1m\ntests:\n");
    // 0.5 % errors = 0.5x the 1 % budget: nothing fires.
    tests += &case("healthy", "0+1000x420", "0+995x420", "7h", false, false);
    // 2 % errors = 2x: above 1x over 3 d and 6 h (ticket), far below 6x (no page).
    tests += &case("slow burn", "0+1000x420", "0+980x420", "7h", false, true);
    // 50 % errors for an hour = 50x: page (and ticket).
    tests += &case("fast burn", "0+1000x60", "0+500x60", "1h", true, true);
    // The fast burn stopped an hour ago: the short windows are clean, so no
    // page any more; the ticket stays (6 h and 3 d still over budget).
    tests += &case(
        "fast burn over",
        "0+1000x120",
        "0+500x60 31000+1000x59",
        "2h",
        false,
        true,
    );
    tests += r#"  # recorded values
  - interval: 1m
    input_series:
      - series: 'ferrosim_activations_total{kind="eim_download",carrier="globex",outcome="failure"}'
        values: '0+1000x60'
      - series: 'ferrosim_activation_duration_seconds_bucket{kind="eim_download",carrier="globex",le="60.0"}'
        values: '0+750x60'
    promql_expr_test:
      - expr: slo:objective:ratio{sloth_slo="activation-success-60s"}
        eval_time: 1h
        exp_samples:
          - labels: 'slo:objective:ratio{sloth_id="ferrosim-activation-success-60s", sloth_service="ferrosim", sloth_slo="activation-success-60s"}'
            value: 0.99
      - expr: slo:sli_error:ratio_rate1h{sloth_slo="activation-success-60s"}
        eval_time: 1h
        exp_samples:
          - labels: 'slo:sli_error:ratio_rate1h{sloth_id="ferrosim-activation-success-60s", sloth_service="ferrosim", sloth_slo="activation-success-60s", sloth_window="1h"}'
            value: 0.25
"#;
    std::fs::write(dir.path().join("tests.yaml"), &tests).unwrap();
    run(promtool, &["test", "rules", "tests.yaml"], dir.path());
}
