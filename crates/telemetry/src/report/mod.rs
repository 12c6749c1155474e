//! SLA reports: targets against actuals per carrier, vendor or SM-DP+, with
//! breaches, error budget left and incidents with their MTTR; rendered as
//! HTML with SVG charts, CSV and JSON ([`render`]).
//!
//! Computed from events with [`crate::metrics::compute`]: once over the whole
//! period (actuals, incidents) and once per bucket (the series charted and
//! the breaches: buckets where a target was missed).

pub mod render;

use serde::Serialize;

use crate::dims::{Dictionary, Dimension};
use crate::event::Event;
use crate::metrics::{CauseRecovery, Incident, Metrics, MetricsQuery, compute};
use crate::store::Filter;
use crate::time::Timestamp;

/// What the SLA promises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlaTargets {
    /// Minimum ratio of activations successful within 60 s.
    pub success_within_60s: f64,
    /// Maximum MTTR of failed activations (ms).
    pub mttr_ms: u64,
    /// Minimum registration success rate.
    pub registration_success: f64,
    /// Maximum bytes per active profile, if the SLA has one.
    pub max_bytes_per_active_profile: Option<f64>,
}

impl Default for SlaTargets {
    /// 99 % within 60 s, MTTR 15 min, 98 % registrations, no bytes limit.
    fn default() -> Self {
        Self {
            success_within_60s: 0.99,
            mttr_ms: 15 * 60_000,
            registration_success: 0.98,
            max_bytes_per_active_profile: None,
        }
    }
}

/// Why a report cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The period ends before it starts, or is empty.
    #[error("the report period must end after it starts")]
    EmptyPeriod,
    /// The bucket is not positive or makes more than 1000 buckets.
    #[error("the bucket must be positive and give at most 1000 buckets")]
    BadBucket,
    /// A target is outside its domain.
    #[error("targets: ratios must be in 0..=1")]
    BadTarget,
}

/// What to report on.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaQuery {
    /// Period start (included).
    pub from: Timestamp,
    /// Period end (excluded).
    pub to: Timestamp,
    /// Evaluated at (usually `to`).
    pub as_of: Timestamp,
    /// One section per value of this dimension.
    pub by: Dimension,
    /// Length of the chart and breach buckets (ms).
    pub bucket_ms: i64,
    /// The promises.
    pub targets: SlaTargets,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    /// Period start.
    pub from: Timestamp,
    /// Period end.
    pub to: Timestamp,
    /// Grouped by.
    pub by: Dimension,
    /// Bucket length (ms).
    pub bucket_ms: i64,
    /// The promises.
    pub targets: SlaTargets,
    /// Every group together.
    pub total: SlaSection,
    /// One section per group, ordered by label.
    pub sections: Vec<SlaSection>,
}

/// One group's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaSection {
    /// The group (`"all"` for the total).
    pub label: String,
    /// Targets against actuals over the whole period.
    pub checks: Vec<Check>,
    /// Error budget of the success-within-60 s target.
    pub error_budget: ErrorBudget,
    /// Buckets where a target was missed.
    pub breaches: Vec<Breach>,
    /// Per bucket: success ratio and MTTR.
    pub series: Vec<Point>,
    /// Failed activations with their recovery, in time order.
    pub incidents: Vec<Incident>,
    /// MTTR per cause.
    pub incidents_by_cause: Vec<CauseRecovery>,
    /// The full metrics of the period.
    pub metrics: Metrics,
}

/// One target against its actual value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `success_within_60s`, `mttr_ms`, `registration_success`,
    /// `bytes_per_active_profile`.
    pub name: &'static str,
    /// The target.
    pub target: f64,
    /// The actual value; `None` when there was nothing to measure.
    pub actual: Option<f64>,
    /// Met, missed, or `None` when nothing was measured.
    pub met: Option<bool>,
}

/// The success-within-60 s error budget over the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorBudget {
    /// Activations that may miss the target: (1 − target) × decided.
    pub allowed_misses: f64,
    /// Activations that missed it: decided − within target.
    pub misses: u64,
    /// 1 − misses / allowed (negative when overspent); `None` when nothing
    /// was decided or the target allows no miss.
    pub remaining: Option<f64>,
}

/// A bucket where a target was missed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    /// Bucket start.
    pub from: Timestamp,
    /// Which target.
    pub check: &'static str,
    /// Actual value in that bucket.
    pub actual: f64,
    /// The target.
    pub target: f64,
}

/// One bucket of a section's series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Bucket start.
    pub from: Timestamp,
    /// Decided activations started in the bucket.
    pub decided: u64,
    /// Their success ratio.
    pub success_ratio: Option<f64>,
    /// MTTR of those that failed and recovered (ms).
    pub mttr_ms: Option<f64>,
}

/// Computes the report over `events` (ordered or not).
pub fn sla_report(
    events: &[Event],
    q: &SlaQuery,
    dict: &Dictionary,
) -> Result<SlaReport, ReportError> {
    if q.to <= q.from {
        return Err(ReportError::EmptyPeriod);
    }
    let span = q.to.millis().saturating_sub(q.from.millis());
    if q.bucket_ms <= 0 || span / q.bucket_ms >= 1000 {
        return Err(ReportError::BadBucket);
    }
    let t = &q.targets;
    let ratio_ok = |r: f64| (0.0..=1.0).contains(&r);
    if !ratio_ok(t.success_within_60s) || !ratio_ok(t.registration_success) {
        return Err(ReportError::BadTarget);
    }
    let query = |from: Timestamp, to: Timestamp| MetricsQuery {
        from,
        to,
        as_of: q.as_of,
        filter: Filter::default(),
        group_by: Some(q.by),
        target_ms: crate::metrics::DEFAULT_TARGET_MS,
        incidents: true,
    };
    let whole = compute(events, &query(q.from, q.to), dict);
    let mut buckets = Vec::new();
    let mut start = q.from;
    while start < q.to {
        let end = Timestamp(
            start
                .millis()
                .saturating_add(q.bucket_ms)
                .min(q.to.millis()),
        );
        buckets.push((start, compute(events, &query(start, end), dict)));
        start = end;
    }
    let section =
        |label: &str,
         m: &Metrics,
         pick: &dyn Fn(&crate::metrics::MetricsReport) -> Option<Metrics>| {
            let series: Vec<Point> = buckets
                .iter()
                .map(|(from, r)| {
                    let b = pick(r).unwrap_or_default();
                    Point {
                        from: *from,
                        decided: b.activations.decided,
                        success_ratio: b.activations.success_ratio,
                        mttr_ms: b.recovery.mttr_ms,
                    }
                })
                .collect();
            build_section(label, m, series, t)
        };
    let total = section("all", &whole.total, &|r| Some(r.total.clone()));
    let sections = whole
        .groups
        .iter()
        .map(|g| {
            let label = g.label.clone();
            section(&g.label, &g.metrics, &move |r| r.group(&label).cloned())
        })
        .collect();
    Ok(SlaReport {
        from: q.from,
        to: q.to,
        by: q.by,
        bucket_ms: q.bucket_ms,
        targets: *t,
        total,
        sections,
    })
}

fn build_section(label: &str, m: &Metrics, series: Vec<Point>, t: &SlaTargets) -> SlaSection {
    let at_least = |actual: Option<f64>, target: f64| actual.map(|a| a >= target);
    let at_most = |actual: Option<f64>, target: f64| actual.map(|a| a <= target);
    let mut checks = vec![
        Check {
            name: "success_within_60s",
            target: t.success_within_60s,
            actual: m.activations.success_ratio,
            met: at_least(m.activations.success_ratio, t.success_within_60s),
        },
        Check {
            name: "mttr_ms",
            target: t.mttr_ms as f64,
            actual: m.recovery.mttr_ms,
            met: at_most(m.recovery.mttr_ms, t.mttr_ms as f64),
        },
        Check {
            name: "registration_success",
            target: t.registration_success,
            actual: m.connectivity.registration_success_rate,
            met: at_least(
                m.connectivity.registration_success_rate,
                t.registration_success,
            ),
        },
    ];
    if let Some(max) = t.max_bytes_per_active_profile {
        checks.push(Check {
            name: "bytes_per_active_profile",
            target: max,
            actual: m.bytes.bytes_per_active_profile,
            met: at_most(m.bytes.bytes_per_active_profile, max),
        });
    }
    let decided = m.activations.decided;
    let misses = decided - m.activations.within_target;
    let allowed = (1.0 - t.success_within_60s) * decided as f64;
    let error_budget = ErrorBudget {
        allowed_misses: allowed,
        misses,
        remaining: (decided > 0 && allowed > 0.0).then(|| 1.0 - misses as f64 / allowed),
    };
    let mut breaches = Vec::new();
    for p in &series {
        if let Some(r) = p.success_ratio.filter(|r| *r < t.success_within_60s) {
            breaches.push(Breach {
                from: p.from,
                check: "success_within_60s",
                actual: r,
                target: t.success_within_60s,
            });
        }
        if let Some(ms) = p.mttr_ms.filter(|ms| *ms > t.mttr_ms as f64) {
            breaches.push(Breach {
                from: p.from,
                check: "mttr_ms",
                actual: ms,
                target: t.mttr_ms as f64,
            });
        }
    }
    SlaSection {
        label: label.to_owned(),
        checks,
        error_budget,
        breaches,
        series,
        incidents: m.incidents.clone(),
        incidents_by_cause: m.recovery.by_cause.clone(),
        metrics: Metrics {
            incidents: Vec::new(),
            ..m.clone()
        },
    }
}
