//! What the dashboard shows, computed from events: pure functions of the
//! events, the evaluation instant and the window (no I/O), each returning the
//! JSON document its API endpoint serves. Every number on the dashboard page
//! comes from one of these documents.

use std::collections::HashMap;

use ferrosim_pki::Eid;
use ferrosim_telemetry::metrics::{Incident, Metrics};
use ferrosim_telemetry::record::EventRecord;
use ferrosim_telemetry::{
    ActivationKind, CorrelationId, Dictionary, Dimension, EuiccOutcome, Event, EventKind,
    MetricsQuery, RegistrationOutcome, StepStatus, Timestamp, compute,
};
use serde::Serialize;

/// The activation SLO's objective when the shipped SLO file has none.
pub(crate) const DEFAULT_OBJECTIVE: f64 = 0.99;

/// The objective of the shipped activation SLO (`deploy/slo/ferrosim.yaml`,
/// `activation-success-60s`).
pub(crate) fn activation_objective() -> f64 {
    ferrosim_telemetry::slo::parse_openslo(ferrosim_telemetry::slo::DEFAULT_SLOS)
        .ok()
        .and_then(|slos| {
            slos.into_iter()
                .find(|s| s.name == "activation-success-60s")
                .map(|s| s.objective)
        })
        .unwrap_or(DEFAULT_OBJECTIVE)
}

/// The three headline metrics and their parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Headline {
    /// Activations started in the window.
    pub started: u64,
    /// Of which the 60-second outcome is known.
    pub decided: u64,
    /// Younger than 60 s and not successful yet.
    pub pending: u64,
    /// Successful within 60 s.
    pub within_target: u64,
    /// Successful after more than 60 s.
    pub late: u64,
    /// Decided and not successful.
    pub not_successful: u64,
    /// `within_target / decided`.
    pub success_ratio: Option<f64>,
    /// Failed activations (a failure before success, or no success).
    pub failed: u64,
    /// Of which recovered.
    pub recovered: u64,
    /// Of which still open.
    pub unrecovered: u64,
    /// Mean time to recovery of the recovered ones (ms).
    pub mttr_ms: Option<f64>,
    /// BPP and signalling bytes of the window.
    pub bytes: u64,
    /// Profiles in use in the window.
    pub active_profiles: u64,
    /// `bytes / active_profiles`.
    pub bytes_per_active_profile: Option<f64>,
    /// Successful installations.
    pub downloads: u64,
    /// Profiles downloaded and never enabled.
    pub downloaded_never_enabled: u64,
    /// Time to success p50 (ms).
    pub time_to_success_p50_ms: Option<u64>,
    /// Time to success p99 (ms).
    pub time_to_success_p99_ms: Option<u64>,
}

impl Headline {
    pub(crate) fn of(m: &Metrics) -> Self {
        let a = &m.activations;
        Self {
            started: a.started,
            decided: a.decided,
            pending: a.pending,
            within_target: a.within_target,
            late: a.late,
            not_successful: a.not_successful,
            success_ratio: a.success_ratio,
            failed: m.recovery.failed,
            recovered: m.recovery.recovered,
            unrecovered: m.recovery.unrecovered,
            mttr_ms: m.recovery.mttr_ms,
            bytes: m.bytes.bpp_bytes + m.bytes.signalling_bytes,
            active_profiles: m.bytes.active_profiles,
            bytes_per_active_profile: m.bytes.bytes_per_active_profile,
            downloads: m.bytes.downloads,
            downloaded_never_enabled: m.bytes.downloaded_never_enabled,
            time_to_success_p50_ms: a.time_to_success_ms.p50,
            time_to_success_p99_ms: a.time_to_success_ms.p99,
        }
    }
}

/// Devices by the outcome of their latest activation in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct FleetHealth {
    /// Devices with an event in the window.
    pub devices: u64,
    /// Latest activation succeeded.
    pub healthy: u64,
    /// Latest activation failed and has not succeeded.
    pub failing: u64,
    /// Latest activation neither failed nor succeeded yet.
    pub in_progress: u64,
}

/// Fleet health over `events` (see [`FleetHealth`]).
pub(crate) fn fleet_health(events: &[Event]) -> FleetHealth {
    #[derive(Default, Clone, Copy)]
    struct Act {
        first: Option<Timestamp>,
        success: bool,
        failure: bool,
    }
    let mut acts: HashMap<CorrelationId, (Eid, Act)> = HashMap::new();
    let mut devices: HashMap<Eid, Option<CorrelationId>> = HashMap::new();
    for e in events {
        devices.entry(e.device).or_insert(None);
        let Some(id) = e.activation else { continue };
        let (_, a) = acts.entry(id).or_insert((e.device, Act::default()));
        a.first = Some(a.first.map_or(e.at, |f| f.min(e.at)));
        match e.kind {
            EventKind::Euicc {
                outcome: EuiccOutcome::Installed,
                ..
            } => a.success = true,
            EventKind::Euicc {
                outcome: EuiccOutcome::Failed { .. },
                ..
            }
            | EventKind::Registration {
                outcome: RegistrationOutcome::Rejected { .. } | RegistrationOutcome::NoResponse,
                ..
            } => a.failure = true,
            EventKind::Step { status, .. } if status != StepStatus::Ok => a.failure = true,
            _ => {}
        }
    }
    for (id, (device, a)) in &acts {
        let latest = devices.entry(*device).or_insert(None);
        let newer = match latest {
            None => true,
            Some(other) => acts
                .get(other)
                .is_none_or(|(_, o)| (o.first, other.get()) < (a.first, id.get())),
        };
        if newer {
            *latest = Some(*id);
        }
    }
    let mut h = FleetHealth {
        devices: devices.len() as u64,
        ..FleetHealth::default()
    };
    for latest in devices.values() {
        match latest.and_then(|id| acts.get(&id)) {
            Some((_, a)) if a.success => h.healthy += 1,
            Some((_, a)) if a.failure => h.failing += 1,
            _ => h.in_progress += 1,
        }
    }
    h
}

/// One carrier's activations and health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CarrierHealth {
    /// The carrier (`(none)` when unknown).
    pub carrier: String,
    /// `healthy` (success ratio at or above the SLO objective), `degraded`
    /// (below it), `failing` (below 90 %), or `no data` (nothing decided).
    pub health: &'static str,
    /// Its headline metrics.
    #[serde(flatten)]
    pub headline: Headline,
}

/// The health word of a success ratio.
pub(crate) fn health_of(ratio: Option<f64>, objective: f64) -> &'static str {
    match ratio {
        None => "no data",
        Some(r) if r >= objective => "healthy",
        Some(r) if r >= 0.9 => "degraded",
        Some(_) => "failing",
    }
}

/// Metrics per carrier over `[from, as_of]`.
pub(crate) fn carriers(
    events: &[Event],
    from: Timestamp,
    as_of: Timestamp,
    dict: &Dictionary,
    objective: f64,
) -> Vec<CarrierHealth> {
    let mut q = window(from, as_of);
    q.group_by = Some(Dimension::Carrier);
    let report = compute(events, &q, dict);
    report
        .groups
        .iter()
        .map(|g| CarrierHealth {
            carrier: g.label.clone(),
            health: health_of(g.metrics.activations.success_ratio, objective),
            headline: Headline::of(&g.metrics),
        })
        .collect()
}

/// The window `[from, as_of]` (inclusive of the evaluation instant).
pub(crate) fn window(from: Timestamp, as_of: Timestamp) -> MetricsQuery {
    let mut q = MetricsQuery::window(from, Timestamp(as_of.millis().saturating_add(1)));
    q.as_of = as_of;
    q
}

/// The headline metrics over the whole window.
pub(crate) fn headline(
    events: &[Event],
    from: Timestamp,
    as_of: Timestamp,
    dict: &Dictionary,
) -> Headline {
    Headline::of(&compute(events, &window(from, as_of), dict).total)
}

/// One bucket of the time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Bucket {
    /// Its start (ms).
    pub from: Timestamp,
    /// Its end (ms, excluded).
    pub to: Timestamp,
    /// The headline metrics of activations started (and bytes spent) in it,
    /// as of the evaluation instant.
    #[serde(flatten)]
    pub headline: Headline,
}

/// The headline metrics per bucket: `buckets` equal parts of
/// `[from, as_of]`.
pub(crate) fn series(
    events: &[Event],
    from: Timestamp,
    as_of: Timestamp,
    buckets: u32,
    dict: &Dictionary,
) -> Vec<Bucket> {
    let span = (as_of.millis() + 1 - from.millis()).max(1);
    let n = i64::from(buckets.max(1));
    (0..n)
        .map(|i| {
            let b_from = Timestamp(from.millis() + span * i / n);
            let b_to = Timestamp(from.millis() + span * (i + 1) / n);
            let mut q = MetricsQuery::window(b_from, b_to);
            q.as_of = as_of;
            Bucket {
                from: b_from,
                to: b_to,
                headline: Headline::of(&compute(events, &q, dict).total),
            }
        })
        .collect()
}

/// Failed activations of the window, the latest failure first.
pub(crate) fn failures(
    events: &[Event],
    from: Timestamp,
    as_of: Timestamp,
    dict: &Dictionary,
    limit: usize,
) -> Vec<Incident> {
    let mut q = window(from, as_of);
    q.incidents = true;
    let mut incidents = compute(events, &q, dict).total.incidents;
    incidents.sort_by(|a, b| {
        b.failed_at
            .cmp(&a.failed_at)
            .then(b.activation.cmp(&a.activation))
    });
    incidents.truncate(limit);
    incidents
}

/// One burn-rate alert of the activation SLO, as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BurnAlert {
    /// `page` or `ticket`.
    pub severity: &'static str,
    /// The long window, e.g. `1h`.
    pub long_window: &'static str,
    /// The short window, e.g. `5m`.
    pub short_window: &'static str,
    /// Burn-rate threshold of both windows.
    pub factor: f64,
    /// Error ratio ÷ error budget over the long window (`None`: nothing
    /// decided).
    pub long_burn: Option<f64>,
    /// The same over the short window.
    pub short_burn: Option<f64>,
    /// Both above the threshold.
    pub firing: bool,
}

/// The alert windows of docs/METRICS.md: page at 14.4x over 1 h and 5 min,
/// or 6x over 6 h and 30 min; ticket at 1x over 3 d and 6 h.
pub(crate) const BURN_WINDOWS: [(&str, u64, &str, u64, f64, &str); 3] = [
    ("1h", 3_600, "5m", 300, 14.4, "page"),
    ("6h", 21_600, "30m", 1_800, 6.0, "page"),
    ("3d", 259_200, "6h", 21_600, 1.0, "ticket"),
];

/// The longest window the alerts look at (3 days).
pub(crate) const ALERT_LOOKBACK_S: u64 = 259_200;

/// Evaluates the activation SLO's burn-rate alerts at `as_of` over `events`
/// (which must reach back [`ALERT_LOOKBACK_S`]), for `objective`.
pub(crate) fn burn_alerts(
    events: &[Event],
    as_of: Timestamp,
    objective: f64,
    dict: &Dictionary,
) -> Vec<BurnAlert> {
    let budget = (1.0 - objective).max(f64::EPSILON);
    let burn = |secs: u64| -> Option<f64> {
        let from = Timestamp(as_of.millis() - i64::try_from(secs * 1000).unwrap_or(i64::MAX));
        let a = compute(events, &window(from, as_of), dict)
            .total
            .activations;
        (a.decided > 0).then(|| (a.decided - a.within_target) as f64 / a.decided as f64 / budget)
    };
    BURN_WINDOWS
        .iter()
        .map(
            |&(long_window, long, short_window, short, factor, severity)| {
                let (long_burn, short_burn) = (burn(long), burn(short));
                BurnAlert {
                    severity,
                    long_window,
                    short_window,
                    factor,
                    long_burn,
                    short_burn,
                    firing: long_burn.is_some_and(|b| b > factor)
                        && short_burn.is_some_and(|b| b > factor),
                }
            },
        )
        .collect()
}

/// Activations of one kind (failovers) in the window, latest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ActivationSummary {
    /// Correlation id.
    pub activation: u64,
    /// EID.
    pub device: String,
    /// Carrier of its first event.
    pub carrier: Option<String>,
    /// First event (ms).
    pub started_at: Timestamp,
    /// Whether the eUICC installed (or the device registered).
    pub succeeded: bool,
}

/// Activations marked `activation_started` with `kind`, latest first.
pub(crate) fn activations_of_kind(
    events: &[Event],
    kind: ActivationKind,
    dict: &Dictionary,
    limit: usize,
) -> Vec<ActivationSummary> {
    let mut found: HashMap<CorrelationId, ActivationSummary> = HashMap::new();
    for e in events {
        if let (Some(id), EventKind::ActivationStarted { kind: k, .. }) = (e.activation, e.kind)
            && k == kind
        {
            found.entry(id).or_insert_with(|| ActivationSummary {
                activation: id.get(),
                device: e.device.to_string(),
                carrier: dict.name_of(e.dims.carrier).map(|c| c.to_string()),
                started_at: e.at,
                succeeded: false,
            });
        }
    }
    for e in events {
        if let (
            Some(id),
            EventKind::Euicc {
                outcome: EuiccOutcome::Installed,
                ..
            },
        ) = (e.activation, e.kind)
            && let Some(s) = found.get_mut(&id)
        {
            s.succeeded = true;
        }
    }
    let mut out: Vec<ActivationSummary> = found.into_values().collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.started_at));
    out.truncate(limit);
    out
}

/// Rollout waves seen in the window with their metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WaveSummary {
    /// `rollout#wave`.
    pub wave: String,
    /// Gate evaluations reported for it (none are reported yet: the fleet
    /// plane owns them).
    pub gates: Vec<String>,
    /// Its headline metrics.
    #[serde(flatten)]
    pub headline: Headline,
}

/// Rollout waves in `events` (activations with a rollout dimension).
pub(crate) fn rollout_waves(
    events: &[Event],
    from: Timestamp,
    as_of: Timestamp,
    dict: &Dictionary,
) -> Vec<WaveSummary> {
    let mut q = window(from, as_of);
    q.group_by = Some(Dimension::Wave);
    compute(events, &q, dict)
        .groups
        .into_iter()
        .filter(|g| g.key.first.is_some())
        .map(|g| WaveSummary {
            wave: g.label,
            gates: Vec::new(),
            headline: Headline::of(&g.metrics),
        })
        .collect()
}

/// Events as their JSON records.
pub(crate) fn records(events: &[Event], dict: &Dictionary) -> Vec<EventRecord> {
    events
        .iter()
        .map(|e| EventRecord::from_event(e, dict))
        .collect()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
