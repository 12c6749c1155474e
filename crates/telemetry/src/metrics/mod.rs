//! The headline metrics, computed exactly from events.
//!
//! Definitions (what counts, from when to when, edge cases) are in
//! `docs/METRICS.md`; this module is their implementation and the tests in
//! `tests/metrics_fixtures.rs` hold it to them. Everything is integer
//! milliseconds and counts; ratios and means are derived from them last.
//!
//! The entry point is [`compute`]: events in, a [`MetricsReport`] out, with
//! one [`Metrics`] per group of the chosen [`Dimension`]. The fleet plane's
//! rollout gates call it with a [`Filter`] naming the devices of a wave
//! ([`MetricsQuery::for_devices`]).

mod engine;

use std::collections::BTreeSet;
use std::fmt;

use ferrosim_ids::Eid;
use serde::Serialize;

use crate::dims::{Dictionary, Dimension, GroupKey};
use crate::event::{CorrelationId, EuiccStage, Event, Function, RegistrationOutcome, StepStatus};
use crate::record::stage_name;
use crate::store::Filter;
use crate::time::Timestamp;

pub use engine::compute;

/// The default activation target: 60 seconds.
pub const DEFAULT_TARGET_MS: u64 = 60_000;

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    /// First instant of the window (included).
    pub from: Timestamp,
    /// End of the window (excluded).
    pub to: Timestamp,
    /// The instant the metrics are evaluated at: events after it are ignored
    /// and activations younger than the target are still pending. Usually
    /// `to` or later.
    pub as_of: Timestamp,
    /// Only events and activations passing this filter.
    pub filter: Filter,
    /// Split the results per value of this dimension (one group when `None`).
    pub group_by: Option<Dimension>,
    /// Activation success target in milliseconds (60 000).
    pub target_ms: u64,
    /// Also list every failed activation ([`Metrics::incidents`]).
    pub incidents: bool,
}

impl MetricsQuery {
    /// The window `[from, to)` evaluated at `to`, no filter, no grouping.
    pub fn window(from: Timestamp, to: Timestamp) -> Self {
        Self {
            from,
            to,
            as_of: to,
            filter: Filter::default(),
            group_by: None,
            target_ms: DEFAULT_TARGET_MS,
            incidents: false,
        }
    }

    /// Metrics of this set of devices over `[from, to)` evaluated at
    /// `as_of`: what a rollout gate asks about a wave.
    pub fn for_devices(
        devices: impl IntoIterator<Item = Eid>,
        from: Timestamp,
        to: Timestamp,
        as_of: Timestamp,
    ) -> Self {
        let mut q = Self::window(from, to);
        q.as_of = as_of;
        q.filter.devices = Some(devices.into_iter().collect::<BTreeSet<_>>());
        q
    }
}

/// The result of [`compute`]: metrics per group, and over all groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// The window's start (ms).
    pub from: Timestamp,
    /// The window's end (ms).
    pub to: Timestamp,
    /// When it was evaluated (ms).
    pub as_of: Timestamp,
    /// The dimension of the groups, if grouped.
    pub group_by: Option<Dimension>,
    /// Every event and activation of the window that passed the filter.
    pub total: Metrics,
    /// One entry per group value seen, ordered by label.
    pub groups: Vec<GroupMetrics>,
}

/// The metrics of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMetrics {
    /// The group's key.
    #[serde(skip)]
    pub key: GroupKey,
    /// Its printable name (`"(none)"` when the dimension is unknown).
    pub label: String,
    /// Its metrics.
    pub metrics: Metrics,
}

/// The metrics of a set of events and activations.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Metrics {
    /// Activation success within the target.
    pub activations: ActivationMetrics,
    /// Recovery of failed activations (MTTR).
    pub recovery: RecoveryMetrics,
    /// Bytes per active profile.
    pub bytes: BytesMetrics,
    /// Registration, handover and data-path metrics.
    pub connectivity: ConnectivityMetrics,
    /// Failed activations, when the query asked for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
}

/// Activations started in the window.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ActivationMetrics {
    /// Activations whose first event lies in the window.
    pub started: u64,
    /// Started minus pending: those whose 60-second outcome is known.
    pub decided: u64,
    /// Younger than the target at `as_of` and not yet successful.
    pub pending: u64,
    /// Successful within the target (inclusive).
    pub within_target: u64,
    /// Successful, but later than the target.
    pub late: u64,
    /// Decided, and not successful by `as_of`.
    pub not_successful: u64,
    /// `within_target / decided`; `None` when nothing is decided.
    pub success_ratio: Option<f64>,
    /// Time to success of the successful ones: p50, p90, p99, max (ms).
    pub time_to_success_ms: Percentiles,
}

/// Failed activations and their recovery.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RecoveryMetrics {
    /// Activations started in the window with at least one failure before
    /// success (or without success).
    pub failed: u64,
    /// Failed ones that succeeded by `as_of`.
    pub recovered: u64,
    /// Failed ones not successful by `as_of` (open incidents).
    pub unrecovered: u64,
    /// Sum over recovered ones of success − first failure (ms).
    pub total_recovery_ms: u64,
    /// `total_recovery_ms / recovered`; `None` when nothing recovered.
    pub mttr_ms: Option<f64>,
    /// The same per cause of the first failure, ordered by cause.
    pub by_cause: Vec<CauseRecovery>,
}

/// Recovery of the failed activations whose first failure had one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseRecovery {
    /// The cause, as [`Cause`]'s display.
    pub cause: String,
    /// Failed activations with this first cause.
    pub failed: u64,
    /// Of which recovered.
    pub recovered: u64,
    /// Sum of their recovery times (ms).
    pub total_recovery_ms: u64,
    /// Mean recovery time (ms).
    pub mttr_ms: Option<f64>,
}

/// Over-the-air bytes and the profiles they bought.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BytesMetrics {
    /// Bound Profile Package bytes of the window's steps (retries included).
    pub bpp_bytes: u64,
    /// ES9+/ESipa signalling bytes of the window's steps (retries included).
    pub signalling_bytes: u64,
    /// Distinct profiles in use (enabled or registered with) at some
    /// instant of the window.
    pub active_profiles: u64,
    /// `(bpp_bytes + signalling_bytes) / active_profiles`.
    pub bytes_per_active_profile: Option<f64>,
    /// Successful installations in the window (a profile installed twice
    /// counts twice).
    pub downloads: u64,
    /// Distinct profiles installed in the window.
    pub profiles_downloaded: u64,
    /// Of those, profiles never in use by `as_of`.
    pub downloaded_never_enabled: u64,
}

/// Device connectivity.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ConnectivityMetrics {
    /// Registration attempts reported in the window.
    pub registration_attempts: u64,
    /// Of which accepted.
    pub registrations_ok: u64,
    /// `registrations_ok / registration_attempts`.
    pub registration_success_rate: Option<f64>,
    /// Handover failures reported in the window.
    pub handover_failures: u64,
    /// Data-path checks reported in the window.
    pub data_path_checks: u64,
    /// Of which got at least one probe through (loss below 1000 ‰): the
    /// data path works. A profile with a wrong APN registers but fails here.
    pub data_path_ok: u64,
    /// `data_path_ok / data_path_checks`.
    pub data_path_success_rate: Option<f64>,
    /// Their latency (ms).
    pub latency_ms: Percentiles,
    /// Mean loss in parts per thousand.
    pub mean_loss_permille: Option<f64>,
}

/// Nearest-rank percentiles of a sample (the smallest value with at least
/// p % of the sample at or below it); all `None` for an empty sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    /// Sample size.
    pub count: u64,
    /// Median.
    pub p50: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Largest value.
    pub max: Option<u64>,
}

impl Percentiles {
    /// Of `sample` (sorted in place).
    pub fn of(sample: &mut [u64]) -> Self {
        sample.sort_unstable();
        let n = sample.len();
        let rank = |p: usize| -> Option<u64> {
            if n == 0 {
                return None;
            }
            // ceil(p/100 * n), at least 1.
            let r = (p * n).div_ceil(100).max(1);
            sample.get(r - 1).copied()
        };
        Self {
            count: n as u64,
            p50: rank(50),
            p90: rank(90),
            p95: rank(95),
            p99: rank(99),
            max: sample.last().copied(),
        }
    }
}

/// Why an activation first failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A function call failed or got no answer.
    Step {
        /// The function.
        function: Function,
        /// `Failed(code)` or `Unreachable`.
        status: StepStatus,
    },
    /// The eUICC refused a step.
    Euicc {
        /// Where.
        stage: EuiccStage,
        /// Its error reason.
        reason: u8,
    },
    /// The device could not register on the new profile.
    Registration(RegistrationOutcome),
}

impl fmt::Display for Cause {
    /// `es9plus.authenticateClient 8.2.6/3.8`, `es9plus.getBoundProfilePackage
    /// unreachable`, `euicc load_bound_profile_package#3 reason 8`,
    /// `registration rejected cause 15`, `registration no_response`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Step { function, status } => match status {
                StepStatus::Failed(code) => write!(f, "{function} {code}"),
                StepStatus::Unreachable => write!(f, "{function} unreachable"),
                StepStatus::Ok => write!(f, "{function} ok"),
            },
            Self::Euicc { stage, reason } => {
                let (name, bpp) = stage_name(*stage);
                match bpp {
                    Some(id) => write!(f, "euicc {name}#{id} reason {reason}"),
                    None => write!(f, "euicc {name} reason {reason}"),
                }
            }
            Self::Registration(RegistrationOutcome::Rejected { cause }) => {
                write!(f, "registration rejected cause {cause}")
            }
            Self::Registration(RegistrationOutcome::NoResponse) => {
                f.write_str("registration no_response")
            }
            Self::Registration(RegistrationOutcome::Registered) => f.write_str("registration ok"),
        }
    }
}

/// One failed activation: from its first failure to its recovery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The activation.
    pub activation: u64,
    /// The device (EID digits).
    pub device: String,
    /// Cause of the first failure.
    pub cause: String,
    /// When the activation started.
    pub started_at: Timestamp,
    /// When it first failed.
    pub failed_at: Timestamp,
    /// When it succeeded after all, if it did by `as_of`.
    pub recovered_at: Option<Timestamp>,
    /// `recovered_at − failed_at` (ms).
    pub recovery_ms: Option<u64>,
}

impl MetricsReport {
    /// The group with this label, if any.
    pub fn group(&self, label: &str) -> Option<&Metrics> {
        self.groups
            .iter()
            .find(|g| g.label == label)
            .map(|g| &g.metrics)
    }
}

/// Computes over `events` and names the groups with `dict`. Shorthand for
/// [`compute`] when the events are in a slice.
pub fn compute_slice(events: &[Event], query: &MetricsQuery, dict: &Dictionary) -> MetricsReport {
    compute(events.iter(), query, dict)
}

pub(crate) fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// An activation's id, for incident listings.
pub(crate) fn id_of(id: CorrelationId) -> u64 {
    id.get()
}
