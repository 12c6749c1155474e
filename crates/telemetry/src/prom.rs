//! The Prometheus metric families of ferrosim (prometheus-client), with
//! bounded label sets.
//!
//! [`PromMetrics`] owns a registry; the server exposes
//! [`PromMetrics::encode`] at `/metrics`. Events feed it through
//! [`PromMetrics::observe_event`] (steps, bytes, eUICC results,
//! connectivity) and [`PromMetrics::observe_outcome`] (finished activations
//! from [`crate::tracker::ActivationTracker`]); the fleet plane, the eIM and
//! the callback outbox set their own families directly. Names and labels are
//! listed in docs/METRICS.md ("Prometheus").
//!
//! No label carries an EID, ICCID or other per-device value. Carrier and
//! status-code labels are capped ([`PromMetrics::new`]): past the cap a new
//! value is reported as `other`, so a misbehaving producer cannot explode
//! the series count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::dims::{Dictionary, Sym};
use crate::event::{
    EuiccOutcome, Event, EventKind, Function, RegistrationOutcome, StatusCode, StepStatus,
};
use crate::record::stage_name;
use crate::tracker::ActivationOutcome;

/// Buckets of activation time in seconds; 60 is the SLO's bound.
pub const ACTIVATION_BUCKETS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0,
];
/// Buckets of function latency in seconds.
pub const FUNCTION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of data-path latency in seconds.
pub const DATA_PATH_BUCKETS: [f64; 10] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0];

/// Every family name, as exposed (counters with `_total`); documented in
/// docs/METRICS.md ("Prometheus").
pub const FAMILIES: [&str; 19] = [
    "ferrosim_activations_total",
    "ferrosim_activation_duration_seconds",
    "ferrosim_function_duration_seconds",
    "ferrosim_function_calls_total",
    "ferrosim_ota_bytes_total",
    "ferrosim_euicc_results_total",
    "ferrosim_registrations_total",
    "ferrosim_handover_failures_total",
    "ferrosim_data_path_latency_seconds",
    "ferrosim_profiles_active",
    "ferrosim_telemetry_events_total",
    "ferrosim_eim_queue_depth",
    "ferrosim_callback_outbox_backlog",
    "ferrosim_failovers_total",
    "ferrosim_rollout_waves_total",
    "ferrosim_rollout_gate_evaluations_total",
    "ferrosim_rollouts_active",
    "ferrosim_telemetry_events_dropped_total",
    "ferrosim_telemetry_store_failures_total",
];

type Text = Arc<str>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationLabels {
    kind: &'static str,
    carrier: Text,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationOutcomeLabels {
    kind: &'static str,
    carrier: Text,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    interface: &'static str,
    function: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    interface: &'static str,
    function: &'static str,
    status: Text,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    interface: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CarrierResultLabels {
    carrier: Text,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CarrierLabels {
    carrier: Text,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EuiccLabels {
    result: &'static str,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailoverLabels {
    from_carrier: Text,
    to_carrier: Text,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The label of `ferrosim_telemetry_events_dropped_total`: why events were
/// dropped, one of a fixed set chosen by the producer (`queue_full`,
/// `unattributed`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Rewrites OpenMetrics text (as prometheus-client writes it) in the
/// Prometheus text format 0.0.4: counter families are named with their
/// `_total` suffix in `# HELP` and `# TYPE`, `# UNIT` and `# EOF` go.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A capped set of label values.
#[derive(Debug)]
struct Bounded<K> {
    cap: usize,
    values: Mutex<HashMap<K, Text>>,
}

impl<K: std::hash::Hash + Eq + Copy> Bounded<K> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            values: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: K, name: impl FnOnce() -> Text) -> Text {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = values.get(&key) {
            return v.clone();
        }
        if values.len() >= self.cap {
            return Arc::from("other");
        }
        let v = name();
        values.insert(key, v.clone());
        v
    }
}

/// Every family of ferrosim and the registry that exposes them.
#[derive(Debug)]
pub struct PromMetrics {
    registry: Registry,
    dict: Dictionary,
    carriers: Bounded<Option<Sym>>,
    statuses: Bounded<StatusCode>,
    activations: Family<ActivationOutcomeLabels, Counter>,
    activation_duration: HistogramFamily<ActivationLabels>,
    function_duration: HistogramFamily<FunctionLabels>,
    function_calls: Family<CallLabels, Counter>,
    ota_bytes: Family<BytesLabels, Counter>,
    euicc_results: Family<EuiccLabels, Counter>,
    registrations: Family<CarrierResultLabels, Counter>,
    handover_failures: Family<CarrierLabels, Counter>,
    data_path_latency: HistogramFamily<CarrierLabels>,
    profiles_active: Family<CarrierLabels, Gauge>,
    events: Family<KindLabels, Counter>,
    /// `ferrosim_eim_queue_depth`: eUICC packages waiting in the eIM.
    pub eim_queue_depth: Gauge,
    /// `ferrosim_callback_outbox_backlog`: ES2+ callbacks not yet delivered.
    pub outbox_backlog: Gauge,
    failovers: Family<FailoverLabels, Counter>,
    rollout_waves: Family<OutcomeLabels, Counter>,
    rollout_gates: Family<ResultLabels, Counter>,
    /// `ferrosim_rollouts_active`: rollouts in progress.
    pub rollouts_active: Gauge,
    /// `ferrosim_telemetry_events_dropped_total`: events a producer could
    /// not hand to the telemetry writer (its queue was full) or that could
    /// not be tied to a device; counted instead of slowing the producer.
    pub events_dropped: Family<ReasonLabels, Counter>,
    /// `ferrosim_telemetry_store_failures_total`: batches of events the
    /// telemetry store refused (database down); their events are lost.
    pub store_failures: Counter,
}

fn activation_histogram() -> Histogram {
    Histogram::new(ACTIVATION_BUCKETS)
}
fn function_histogram() -> Histogram {
    Histogram::new(FUNCTION_BUCKETS)
}
fn data_path_histogram() -> Histogram {
    Histogram::new(DATA_PATH_BUCKETS)
}

impl PromMetrics {
    /// The families, registered, naming carriers with `dict`; at most
    /// `max_carriers` carrier values and 64 status codes become labels.
    pub fn new(dict: Dictionary, max_carriers: usize) -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("ferrosim"),
            dict,
            carriers: Bounded::new(max_carriers),
            statuses: Bounded::new(64),
            activations: Family::default(),
            activation_duration: Family::new_with_constructor(activation_histogram),
            function_duration: Family::new_with_constructor(function_histogram),
            function_calls: Family::default(),
            ota_bytes: Family::default(),
            euicc_results: Family::default(),
            registrations: Family::default(),
            handover_failures: Family::default(),
            data_path_latency: Family::new_with_constructor(data_path_histogram),
            profiles_active: Family::default(),
            events: Family::default(),
            eim_queue_depth: Gauge::default(),
            outbox_backlog: Gauge::default(),
            failovers: Family::default(),
            rollout_waves: Family::default(),
            rollout_gates: Family::default(),
            rollouts_active: Gauge::default(),
            events_dropped: Family::default(),
            store_failures: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "activations",
            "Activations that ended: succeeded, or timed out without success",
            m.activations.clone(),
        );
        r.register("activation_duration_seconds", "Time from an activation's first attempt to its success (IoT: registration on the new profile)", m.activation_duration.clone());
        r.register(
            "function_duration_seconds",
            "Duration of ES2+, ES9+ and ESipa function calls",
            m.function_duration.clone(),
        );
        r.register("function_calls", "ES2+, ES9+ and ESipa function calls by status (ok, unreachable, or the SGP.22 subject/reason code)", m.function_calls.clone());
        r.register(
            "ota_bytes",
            "Bytes on the wire: Bound Profile Package and signalling bytes, retries included",
            m.ota_bytes.clone(),
        );
        r.register(
            "euicc_results",
            "eUICC results: installed, or failed with the stage",
            m.euicc_results.clone(),
        );
        r.register(
            "registrations",
            "Network registration attempts reported by devices",
            m.registrations.clone(),
        );
        r.register(
            "handover_failures",
            "Handover failures reported by devices",
            m.handover_failures.clone(),
        );
        r.register(
            "data_path_latency_seconds",
            "Data-path latency measured by devices",
            m.data_path_latency.clone(),
        );
        r.register(
            "profiles_active",
            "Profiles in use per carrier (set from the exact metrics)",
            m.profiles_active.clone(),
        );
        r.register(
            "telemetry_events",
            "Telemetry events received, by kind",
            m.events.clone(),
        );
        r.register(
            "eim_queue_depth",
            "eUICC packages queued in the eIM",
            m.eim_queue_depth.clone(),
        );
        r.register(
            "callback_outbox_backlog",
            "ES2+ callbacks waiting in the outbox",
            m.outbox_backlog.clone(),
        );
        r.register(
            "failovers",
            "Switches to a fallback profile, by carriers and reason",
            m.failovers.clone(),
        );
        r.register(
            "rollout_waves",
            "Rollout waves by outcome (started, completed, rolled_back)",
            m.rollout_waves.clone(),
        );
        r.register(
            "rollout_gate_evaluations",
            "Rollout gate evaluations by result (pass, fail)",
            m.rollout_gates.clone(),
        );
        r.register(
            "rollouts_active",
            "Rollouts in progress",
            m.rollouts_active.clone(),
        );
        r.register(
            "telemetry_events_dropped",
            "Telemetry events dropped instead of slowing their producer (queue_full) or not tied to a device (unattributed)",
            m.events_dropped.clone(),
        );
        r.register(
            "telemetry_store_failures",
            "Batches of telemetry events the telemetry store refused",
            m.store_failures.clone(),
        );
        m
    }

    fn carrier(&self, sym: Option<Sym>) -> Text {
        self.carriers.get(sym, || match sym {
            Some(s) => self.dict.name(s),
            None => Arc::from("none"),
        })
    }

    /// Counts one event in the families it concerns.
    pub fn observe_event(&self, e: &Event) {
        self.count_event(e);
        self.observe_kind(e);
    }

    /// Counts an event in `ferrosim_telemetry_events_total` only: for a
    /// step whose call was already observed ([`PromMetrics::observe_call`]).
    pub fn count_event(&self, e: &Event) {
        self.events
            .get_or_create(&KindLabels {
                kind: e.kind.name(),
            })
            .inc();
    }

    /// Observes one ES2+/ES9+/ESipa function call: its latency, its status
    /// and its bytes. The server calls this for every call it serves, before
    /// it knows which device or activation the call belongs to.
    pub fn observe_call(
        &self,
        function: Function,
        status: StepStatus,
        duration_ms: u32,
        signalling_bytes: u32,
        bpp_bytes: u32,
    ) {
        let (interface, name) = (function.interface().as_str(), function.name());
        let status = match status {
            StepStatus::Ok => Arc::from("ok"),
            StepStatus::Unreachable => Arc::from("unreachable"),
            StepStatus::Failed(code) => self.statuses.get(code, || Arc::from(code.to_string())),
        };
        self.function_calls
            .get_or_create(&CallLabels {
                interface,
                function: name,
                status,
            })
            .inc();
        self.function_duration
            .get_or_create(&FunctionLabels {
                interface,
                function: name,
            })
            .observe(f64::from(duration_ms) / 1000.0);
        for (kind, n) in [("signalling", signalling_bytes), ("bpp", bpp_bytes)] {
            if n > 0 {
                self.ota_bytes
                    .get_or_create(&BytesLabels { interface, kind })
                    .inc_by(u64::from(n));
            }
        }
    }

    fn observe_kind(&self, e: &Event) {
        match e.kind {
            EventKind::Step {
                function,
                status,
                duration_ms,
                signalling_bytes,
                bpp_bytes,
            } => self.observe_call(function, status, duration_ms, signalling_bytes, bpp_bytes),
            EventKind::Euicc { outcome, .. } => {
                let (result, stage) = match outcome {
                    EuiccOutcome::Installed => ("installed", "none"),
                    EuiccOutcome::Failed { stage, .. } => ("failed", stage_name(stage).0),
                };
                self.euicc_results
                    .get_or_create(&EuiccLabels { result, stage })
                    .inc();
            }
            EventKind::Registration { outcome, .. } => {
                let result = match outcome {
                    RegistrationOutcome::Registered => "registered",
                    RegistrationOutcome::Rejected { .. } => "rejected",
                    RegistrationOutcome::NoResponse => "no_response",
                };
                let carrier = self.carrier(e.dims.carrier);
                self.registrations
                    .get_or_create(&CarrierResultLabels { carrier, result })
                    .inc();
            }
            EventKind::HandoverFailure { .. } => {
                let carrier = self.carrier(e.dims.carrier);
                self.handover_failures
                    .get_or_create(&CarrierLabels { carrier })
                    .inc();
            }
            EventKind::DataPath { latency_ms, .. } => {
                let carrier = self.carrier(e.dims.carrier);
                self.data_path_latency
                    .get_or_create(&CarrierLabels { carrier })
                    .observe(f64::from(latency_ms) / 1000.0);
            }
            EventKind::ActivationStarted { .. } | EventKind::Profile { .. } => {}
        }
    }

    /// Counts a finished activation (and its time, when it succeeded).
    pub fn observe_outcome(&self, o: &ActivationOutcome) {
        let carrier = self.carrier(o.carrier);
        let kind = o.kind.as_str();
        let outcome = if o.took_ms.is_some() {
            "success"
        } else {
            "timeout"
        };
        self.activations
            .get_or_create(&ActivationOutcomeLabels {
                kind,
                carrier: carrier.clone(),
                outcome,
            })
            .inc();
        if let Some(ms) = o.took_ms {
            self.activation_duration
                .get_or_create(&ActivationLabels { kind, carrier })
                .observe(ms as f64 / 1000.0);
        }
    }

    /// Sets the number of profiles in use on a carrier.
    pub fn set_profiles_active(&self, carrier: Option<Sym>, n: i64) {
        let carrier = self.carrier(carrier);
        self.profiles_active
            .get_or_create(&CarrierLabels { carrier })
            .set(n);
    }

    /// Counts a failover between carriers; `reason` is one of a fixed set
    /// chosen by the fleet plane (e.g. `registration_rejected`, `no_data`).
    pub fn failover(&self, from: Option<Sym>, to: Option<Sym>, reason: &'static str) {
        let labels = FailoverLabels {
            from_carrier: self.carrier(from),
            to_carrier: self.carrier(to),
            reason,
        };
        self.failovers.get_or_create(&labels).inc();
    }

    /// Counts a rollout wave event: `started`, `completed` or `rolled_back`.
    pub fn rollout_wave(&self, outcome: &'static str) {
        self.rollout_waves
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a rollout gate evaluation.
    pub fn rollout_gate(&self, passed: bool) {
        let result = if passed { "pass" } else { "fail" };
        self.rollout_gates
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The OpenMetrics text of every family, for `/metrics`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The same families in the Prometheus text format 0.0.4, for scrapers
    /// that do not ask for OpenMetrics (and `promtool check metrics`).
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_prometheus(&self.encode()?))
    }
}
