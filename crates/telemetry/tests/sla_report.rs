//! SLA reports over the two-day fixture (testdata/README.md): targets
//! against actuals, breaches, error budget, incidents; HTML with SVG, CSV,
//! JSON; bad queries refused.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_telemetry::report::render::{csv, html, json};
use ferrosim_telemetry::report::{ReportError, SlaQuery, SlaTargets, sla_report};
use ferrosim_telemetry::*;

const EVENTS: &str = include_str!("../testdata/sla-events.jsonl");
const DAY: i64 = 86_400_000;
const T0: i64 = 1_795_478_400_000;

fn query(by: Dimension) -> SlaQuery {
    SlaQuery {
        from: Timestamp(T0),
        to: Timestamp(T0 + 2 * DAY),
        as_of: Timestamp(T0 + 2 * DAY),
        by,
        bucket_ms: DAY,
        targets: SlaTargets::default(),
    }
}

#[test]
fn report_by_carrier() {
    let dict = Dictionary::new();
    let events = read_jsonl(EVENTS.as_bytes(), &dict).unwrap();
    let r = sla_report(&events, &query(Dimension::Carrier), &dict).unwrap();
    let labels: Vec<&str> = r.sections.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["acme", "globex"]);

    let acme = &r.sections[0];
    assert_eq!(acme.metrics.activations.within_target, 23);
    assert_eq!(acme.metrics.activations.decided, 24);
    assert_eq!(acme.checks[0].met, Some(false), "23/24 < 99 %");
    // Budget: 1 % of 24 = 0.24 allowed misses, 1 miss: overspent.
    assert_eq!(acme.error_budget.misses, 1);
    assert!((acme.error_budget.remaining.unwrap() - (1.0 - 1.0 / 0.24)).abs() < 1e-9);
    assert_eq!(acme.incidents.len(), 1);
    assert_eq!(
        acme.incidents[0].recovered_at, None,
        "the activation that never ends"
    );
    assert_eq!(acme.breaches.len(), 1, "day 1 only: {:?}", acme.breaches);

    let globex = &r.sections[1];
    assert_eq!(globex.metrics.activations.within_target, 20);
    assert_eq!(globex.metrics.recovery.recovered, 4);
    assert_eq!(globex.metrics.recovery.mttr_ms, Some(1_207_000.0));
    assert_eq!(globex.checks[1].met, Some(false), "MTTR over 15 min");
    let breached: Vec<(i64, &str)> = globex
        .breaches
        .iter()
        .map(|b| (b.from.millis(), b.check))
        .collect();
    assert_eq!(
        breached,
        [(T0 + DAY, "success_within_60s"), (T0 + DAY, "mttr_ms")]
    );
    assert_eq!(globex.series.len(), 2);
    assert_eq!(globex.series[0].success_ratio, Some(1.0));
    assert_eq!(globex.series[1].success_ratio, Some(8.0 / 12.0));
    assert_eq!(
        globex.incidents_by_cause[0].cause,
        "es9plus.authenticateClient 8.2.7/3.8"
    );

    assert_eq!(r.total.metrics.activations.within_target, 43);
    assert_eq!(r.total.metrics.activations.success_ratio, Some(43.0 / 48.0));
    // Registrations: 4 rejected of 47 (the never-ending activation has none).
    assert_eq!(r.total.metrics.connectivity.registration_attempts, 47);
}

#[test]
fn renders_html_csv_and_json() {
    let dict = Dictionary::new();
    let events = read_jsonl(EVENTS.as_bytes(), &dict).unwrap();
    for by in [Dimension::Carrier, Dimension::Vendor, Dimension::Smdp] {
        let r = sla_report(&events, &query(by), &dict).unwrap();
        let page = html(&r).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 2, "two charts");
        assert!(page.contains("Activations successful within 60 s"));
        assert!(page.contains("Incidents by cause"));
        let text = csv(&r).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 4, "header, total, two groups");
        assert!(rows[1].starts_with("all,48,48,43,"), "{}", rows[1]);
        let back: serde_json::Value = serde_json::from_str(&json(&r).unwrap()).unwrap();
        assert_eq!(back["sections"].as_array().unwrap().len(), 2);
        assert_eq!(back["total"]["metrics"]["activations"]["within_target"], 43);
    }
    let by_vendor = sla_report(&events, &query(Dimension::Vendor), &dict).unwrap();
    assert_eq!(by_vendor.sections[1].label, "telit");
}

#[test]
fn a_period_of_one_bucket_still_shows_its_points_and_readable_check_names() {
    let dict = Dictionary::new();
    let events = read_jsonl(EVENTS.as_bytes(), &dict).unwrap();
    let mut q = query(Dimension::Carrier);
    q.bucket_ms = 2 * DAY;
    let r = sla_report(&events, &q, &dict).unwrap();
    assert_eq!(r.total.series.len(), 1, "one bucket");
    let page = html(&r).unwrap();
    let success_chart = &page[..page.find("MTTR of failed activations (s)").unwrap()];
    // One marker per group and bucket (total, acme, globex): a single
    // bucket draws no line, so without markers the chart would look empty.
    assert_eq!(
        success_chart.matches("<circle").count(),
        3,
        "{success_chart}"
    );
    assert!(page.contains("<td>MTTR of failed activations</td>"));
    assert!(page.contains("<td>activations successful within 60 s</td>"));
    assert!(
        !page.contains("<td>mttr_ms</td>"),
        "machine names stay in CSV/JSON"
    );
}

#[test]
fn labels_are_escaped_in_html() {
    let dict = Dictionary::new();
    let line = EVENTS
        .lines()
        .next()
        .unwrap()
        .replace("\"acme\"", "\"<script>x</script>\"");
    let events = read_jsonl(line.as_bytes(), &dict).unwrap();
    let r = sla_report(&events, &query(Dimension::Carrier), &dict).unwrap();
    let page = html(&r).unwrap();
    assert!(!page.contains("<script>"), "labels are escaped");
}

#[test]
fn bad_queries_are_refused() {
    let dict = Dictionary::new();
    let mut q = query(Dimension::Carrier);
    q.to = q.from;
    assert_eq!(sla_report(&[], &q, &dict), Err(ReportError::EmptyPeriod));
    let mut q = query(Dimension::Carrier);
    q.bucket_ms = 0;
    assert_eq!(sla_report(&[], &q, &dict), Err(ReportError::BadBucket));
    q.bucket_ms = 60_000; // 2880 buckets
    assert_eq!(sla_report(&[], &q, &dict), Err(ReportError::BadBucket));
    let mut q = query(Dimension::Carrier);
    q.targets.success_within_60s = 1.5;
    assert_eq!(sla_report(&[], &q, &dict), Err(ReportError::BadTarget));
    // An empty period renders without data.
    let r = sla_report(&[], &query(Dimension::Carrier), &dict).unwrap();
    assert!(html(&r).unwrap().contains("SLA report"));
}
