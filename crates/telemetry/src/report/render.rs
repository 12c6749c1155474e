//! An [`SlaReport`] as HTML (with SVG charts drawn by plotters), CSV and
//! JSON. Pure functions: report in, text out; the caller writes files.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;

use super::{SlaReport, SlaSection};
use crate::time::Timestamp;

/// A rendering failure (a chart could not be drawn, CSV or JSON encoding
/// failed).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// plotters refused to draw.
    #[error("chart: {0}")]
    Chart(String),
    /// CSV encoding.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// JSON encoding.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

fn chart_err<E: std::fmt::Debug>(e: E) -> RenderError {
    RenderError::Chart(format!("{e:?}"))
}

/// The report as pretty JSON.
pub fn json(report: &SlaReport) -> Result<String, RenderError> {
    Ok(serde_json::to_string_pretty(report)?)
}

/// One CSV row per section (the total first): targets, actuals, budget,
/// breaches and incidents.
pub fn csv(report: &SlaReport) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "group",
        "activations_started",
        "activations_decided",
        "within_60s",
        "success_ratio",
        "success_target",
        "success_met",
        "failed",
        "unrecovered",
        "mttr_s",
        "mttr_target_s",
        "mttr_met",
        "bytes_per_active_profile",
        "active_profiles",
        "downloaded_never_enabled",
        "registration_success_rate",
        "registration_target",
        "error_budget_remaining",
        "breaches",
        "incidents",
    ])?;
    let num = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    let met = |s: &SlaSection, name: &str| {
        s.checks
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.met)
            .map(|m| m.to_string())
            .unwrap_or_default()
    };
    for s in std::iter::once(&report.total).chain(&report.sections) {
        let m = &s.metrics;
        w.write_record([
            s.label.clone(),
            m.activations.started.to_string(),
            m.activations.decided.to_string(),
            m.activations.within_target.to_string(),
            num(m.activations.success_ratio),
            report.targets.success_within_60s.to_string(),
            met(s, "success_within_60s"),
            m.recovery.failed.to_string(),
            m.recovery.unrecovered.to_string(),
            num(m.recovery.mttr_ms.map(|ms| ms / 1000.0)),
            (report.targets.mttr_ms as f64 / 1000.0).to_string(),
            met(s, "mttr_ms"),
            num(m.bytes.bytes_per_active_profile),
            m.bytes.active_profiles.to_string(),
            m.bytes.downloaded_never_enabled.to_string(),
            num(m.connectivity.registration_success_rate),
            report.targets.registration_success.to_string(),
            num(s.error_budget.remaining),
            s.breaches.len().to_string(),
            s.incidents.len().to_string(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Chart(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Incidents shown per section in HTML (all of them are in JSON and CSV
/// counts).
pub const HTML_INCIDENTS: usize = 100;

/// The report as one self-contained HTML page with inline SVG charts.
pub fn html(report: &SlaReport) -> Result<String, RenderError> {
    let success = success_chart(report)?;
    let mttr = mttr_chart(report)?;
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.2} %", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1} s", v / 1000.0));
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "ferrosim SLA report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "SLA report" }
                p {
                    "Period " (report.from) " to " (report.to) ", by " (report.by)
                    ", buckets of " (report.bucket_ms / 60_000) " min."
                }
                h2 { "Targets" }
                ul {
                    li { "Activations successful within 60 s: at least " (pct(Some(report.targets.success_within_60s))) }
                    li { "MTTR of failed activations: at most " (secs(Some(report.targets.mttr_ms as f64))) }
                    li { "Registration success: at least " (pct(Some(report.targets.registration_success))) }
                    @if let Some(b) = report.targets.max_bytes_per_active_profile {
                        li { "Bytes per active profile: at most " (format!("{b:.0}")) }
                    }
                }
                div.chart { (PreEscaped(success)) }
                div.chart { (PreEscaped(mttr)) }
                @for s in std::iter::once(&report.total).chain(&report.sections) {
                    section {
                        h2 { (s.label) }
                        table {
                            tr { th { "target" } th { "goal" } th { "actual" } th { "met" } }
                            @for c in &s.checks {
                                @let is_ratio = c.name != "mttr_ms" && c.name != "bytes_per_active_profile";
                                tr class=(match c.met { Some(true) => "met", Some(false) => "missed", None => "" }) {
                                    td { (check_label(c.name)) }
                                    td { @if is_ratio { (pct(Some(c.target))) } @else if c.name == "mttr_ms" { (secs(Some(c.target))) } @else { (format!("{:.0}", c.target)) } }
                                    td { @if is_ratio { (pct(c.actual)) } @else if c.name == "mttr_ms" { (secs(c.actual)) } @else { (c.actual.map_or("–".to_owned(), |v| format!("{v:.0}"))) } }
                                    td { (match c.met { Some(true) => "yes", Some(false) => "NO", None => "–" }) }
                                }
                            }
                        }
                        p {
                            "Activations: " (s.metrics.activations.started) " started, "
                            (s.metrics.activations.decided) " decided, "
                            (s.metrics.activations.within_target) " within 60 s. "
                            "Error budget left: " (pct(s.error_budget.remaining))
                            " (" (s.error_budget.misses) " misses of "
                            (format!("{:.1}", s.error_budget.allowed_misses)) " allowed). "
                            "Bytes per active profile: "
                            (s.metrics.bytes.bytes_per_active_profile.map_or("–".to_owned(), |b| format!("{b:.0}")))
                            " (" (s.metrics.bytes.active_profiles) " active, "
                            (s.metrics.bytes.downloaded_never_enabled) " downloaded but never enabled)."
                        }
                        @if !s.breaches.is_empty() {
                            h3 { "Breaches" }
                            table {
                                tr { th { "bucket" } th { "target" } th { "actual" } th { "goal" } }
                                @for b in &s.breaches {
                                    tr.missed {
                                        td { (b.from) } td { (check_label(b.check)) }
                                        td { @if b.check == "mttr_ms" { (secs(Some(b.actual))) } @else { (pct(Some(b.actual))) } }
                                        td { @if b.check == "mttr_ms" { (secs(Some(b.target))) } @else { (pct(Some(b.target))) } }
                                    }
                                }
                            }
                        }
                        @if !s.incidents_by_cause.is_empty() {
                            h3 { "Incidents by cause" }
                            table {
                                tr { th { "cause" } th { "failed" } th { "recovered" } th { "MTTR" } }
                                @for c in &s.incidents_by_cause {
                                    tr { td { (c.cause) } td { (c.failed) } td { (c.recovered) } td { (secs(c.mttr_ms)) } }
                                }
                            }
                            h3 { "Incidents" }
                            table {
                                tr { th { "activation" } th { "cause" } th { "failed at" } th { "recovered at" } th { "time to recover" } }
                                @for i in s.incidents.iter().take(HTML_INCIDENTS) {
                                    tr {
                                        td { (i.activation) } td { (i.cause) } td { (i.failed_at) }
                                        td { (i.recovered_at.map_or("not recovered".to_owned(), |t| t.to_string())) }
                                        td { (secs(i.recovery_ms.map(|ms| ms as f64))) }
                                    }
                                }
                            }
                            @if s.incidents.len() > HTML_INCIDENTS {
                                p { (s.incidents.len() - HTML_INCIDENTS) " more in the JSON report." }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page.into_string())
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}tr.met td:last-child{color:#070}tr.missed td{color:#b00}.chart{margin:1em 0}";

/// The reader's name of a check; the JSON and CSV keep the machine name.
fn check_label(name: &str) -> &str {
    match name {
        "success_within_60s" => "activations successful within 60 s",
        "mttr_ms" => "MTTR of failed activations",
        "registration_success" => "registration success",
        "bytes_per_active_profile" => "bytes per active profile",
        other => other,
    }
}

fn day(t: Timestamp) -> String {
    t.to_string().chars().take(16).collect()
}

/// Success ratio per bucket, one line per section, and the target.
fn success_chart(report: &SlaReport) -> Result<String, RenderError> {
    let mut svg = String::new();
    {
        let n = report.total.series.len().max(1);
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let lowest = std::iter::once(&report.total)
            .chain(&report.sections)
            .flat_map(|s| s.series.iter().filter_map(|p| p.success_ratio))
            .fold(report.targets.success_within_60s, f64::min);
        let y0 = (lowest - 0.05).clamp(0.0, 0.95);
        let mut chart = ChartBuilder::on(&root)
            .caption("Activations successful within 60 s", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            // A little headroom above 100 %, so a line at 100 % is not
            // hidden in the frame.
            .build_cartesian_2d(0f64..n as f64, y0..1.005f64)
            .map_err(chart_err)?;
        let series = &report.total.series;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|x| {
                series
                    .get(x.max(0.0) as usize)
                    .map(|p| day(p.from))
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
            .draw()
            .map_err(chart_err)?;
        let target = report.targets.success_within_60s;
        chart
            .draw_series(LineSeries::new(
                [(0.0, target), (n as f64, target)],
                BLACK.stroke_width(2),
            ))
            .map_err(chart_err)?
            .label("target")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        for (i, s) in std::iter::once(&report.total)
            .chain(&report.sections)
            .enumerate()
        {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = s
                .series
                .iter()
                .enumerate()
                .filter_map(|(k, p)| p.success_ratio.map(|r| (k as f64 + 0.5, r)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(chart_err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            // A marker per bucket: a bucket alone (activations in one hour
            // of the period) draws no line.
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(chart_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// MTTR per section over the whole period, as bars, with the target.
fn mttr_chart(report: &SlaReport) -> Result<String, RenderError> {
    let mut svg = String::new();
    {
        let sections: Vec<&SlaSection> = report.sections.iter().collect();
        let n = sections.len().max(1);
        let target_s = report.targets.mttr_ms as f64 / 1000.0;
        let top = sections
            .iter()
            .filter_map(|s| s.metrics.recovery.mttr_ms)
            .map(|ms| ms / 1000.0)
            .fold(target_s, f64::max)
            * 1.15;
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("MTTR of failed activations (s)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..top.max(1.0))
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(sections.iter().enumerate().filter_map(|(i, s)| {
                let v = s.metrics.recovery.mttr_ms? / 1000.0;
                let color = if v > target_s { RED } else { BLUE };
                Some(Rectangle::new(
                    [(i as f64 + 0.2, 0.0), (i as f64 + 0.8, v)],
                    color.mix(0.6).filled(),
                ))
            }))
            .map_err(chart_err)?;
        // Each group's name and MTTR above its bar (at the bottom when
        // nothing recovered).
        chart
            .draw_series(sections.iter().enumerate().map(|(i, s)| {
                let mttr = s.metrics.recovery.mttr_ms.map(|ms| ms / 1000.0);
                let text = match mttr {
                    Some(v) => format!("{}: {v:.0} s", s.label),
                    None => format!("{}: no recovered failure", s.label),
                };
                let y = mttr.unwrap_or(0.0) + top * 0.07;
                Text::new(text, (i as f64 + 0.2, y), ("sans-serif", 13))
            }))
            .map_err(chart_err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, target_s), (n as f64, target_s)],
                BLACK.stroke_width(1),
            ))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}
