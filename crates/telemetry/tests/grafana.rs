//! The Grafana dashboard in the repository: valid JSON, the expected
//! panels, and every query names only metrics ferrosim exposes or records.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;

use ferrosim_telemetry::grafana::{PANEL_TITLES, dashboard_json};
use ferrosim_telemetry::prom::FAMILIES;
use ferrosim_telemetry::slo::{DEFAULT_SLOS, generate_rules, parse_openslo};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/ferrosim.json"
);

#[test]
fn checked_in_dashboard_is_the_generated_one() {
    if std::env::var("FERROSIM_BLESS").as_deref() == Ok("1") {
        std::fs::write(PATH, dashboard_json()).unwrap();
    }
    assert!(
        std::fs::read_to_string(PATH).unwrap() == dashboard_json(),
        "deploy/grafana/ferrosim.json is stale: run `ferrosim slo dashboard --out deploy/grafana/ferrosim.json`"
    );
}

#[test]
fn dashboard_has_the_expected_panels_and_known_metrics() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let panels = json["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, PANEL_TITLES);
    let rules = generate_rules(&parse_openslo(DEFAULT_SLOS).unwrap()).unwrap();
    let recorded: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- record: ")
                .or(l.trim().strip_prefix("record: "))
        })
        .map(str::to_owned)
        .collect();
    assert!(
        recorded.contains("slo:sli_error:ratio_rate5m"),
        "{recorded:?}"
    );
    assert_eq!(
        metric_names(
            "sum by (le) (rate(ferrosim_x_bucket{le=\"60\", a=~\"ferrosim_y\"}[5m])) / slo:z"
        ),
        ["ferrosim_x_bucket", "slo:z"]
    );
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "panel ids are unique"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                let known = name == "ALERTS"
                    || recorded.contains(&name)
                    || FAMILIES.iter().any(|f| {
                        name == *f
                            || ["_bucket", "_sum", "_count"]
                                .iter()
                                .any(|s| name == format!("{f}{s}"))
                    });
                assert!(known, "{name} in {expr:?} is neither exposed nor recorded");
            }
        }
    }
}

/// The metric names an expression selects (identifiers followed by `{`, `[`
/// or standing alone, that are not functions or keywords).
fn metric_names(expr: &str) -> Vec<String> {
    let keywords = [
        "sum",
        "by",
        "rate",
        "increase",
        "histogram_quantile",
        "max",
        "without",
        "le",
        "and",
        "or",
    ];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_braces = false;
    let mut in_quotes = false;
    for c in expr.chars().chain([' ']) {
        if in_quotes {
            in_quotes = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            cur.push(c);
            continue;
        }
        let selected = !cur.is_empty()
            && !in_braces
            && c != '('
            && !keywords.contains(&cur.as_str())
            && (cur.starts_with("ferrosim_") || cur.starts_with("slo:") || cur == "ALERTS");
        if selected {
            out.push(cur.clone());
        }
        cur.clear();
        match c {
            '"' => in_quotes = true,
            '{' => in_braces = true,
            '}' => in_braces = false,
            _ => {}
        }
    }
    out
}
