//! Rollout gates: a wave's measured outcomes against thresholds and
//! against the untouched devices of the same selection.
//!
//! The numbers come from `ferrosim-telemetry` (the driver computes
//! [`ferrosim_telemetry::Metrics`] for the [`GateQuery`] the fleet asks and
//! hands them back); this module only judges them.

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::Metrics;
use ferrosim_telemetry::metrics::MetricsQuery;
use serde::{Deserialize, Serialize};

use crate::duration::Span;

/// What a wave must show to pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Activation success within 60 s of the wave's rollout steps, at least.
    #[serde(default = "default_rate")]
    pub min_activation_success: f64,
    /// Registration success rate, at least.
    #[serde(default = "default_rate")]
    pub min_registration_success: f64,
    /// Data-path success rate, at least.
    #[serde(default = "default_rate")]
    pub min_data_path_success: f64,
    /// Mean time to recover failed activations, at most.
    #[serde(default = "default_mttr")]
    pub max_mttr: Span,
    /// No rate may be worse than the untouched devices' by more than this.
    #[serde(default = "default_degradation")]
    pub max_degradation: f64,
    /// Registrations and data-path checks the wave needs before a verdict.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
}

fn default_rate() -> f64 {
    0.95
}
fn default_mttr() -> Span {
    Span::mins(10)
}
fn default_degradation() -> f64 {
    0.05
}
fn default_min_samples() -> u64 {
    1
}

impl Default for GateSpec {
    fn default() -> Self {
        Self {
            min_activation_success: default_rate(),
            min_registration_success: default_rate(),
            min_data_path_success: default_rate(),
            max_mttr: default_mttr(),
            max_degradation: default_degradation(),
            min_samples: default_min_samples(),
        }
    }
}

impl GateSpec {
    /// Checks the numbers' ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("min_activation_success", self.min_activation_success),
            ("min_registration_success", self.min_registration_success),
            ("min_data_path_success", self.min_data_path_success),
            ("max_degradation", self.max_degradation),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("gate {name} must be in [0, 1]"));
            }
        }
        if self.min_samples == 0 {
            return Err("gate min_samples must be at least 1".into());
        }
        Ok(())
    }
}

/// What the fleet asks the driver to measure for a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateQuery {
    /// The rollout.
    pub rollout: u32,
    /// The wave.
    pub wave: u8,
    /// The wave's devices over its soak.
    pub wave_query: MetricsQuery,
    /// The untouched devices of the selection over the same window.
    pub control_query: MetricsQuery,
}

impl GateQuery {
    pub(crate) fn new(
        rollout: u32,
        wave: u8,
        wave_devices: Vec<Eid>,
        control: Vec<Eid>,
        from: Timestamp,
        now: Timestamp,
    ) -> Self {
        Self {
            rollout,
            wave,
            wave_query: MetricsQuery::for_devices(wave_devices, tt(from), tt(now), tt(now)),
            control_query: MetricsQuery::for_devices(control, tt(from), tt(now), tt(now)),
        }
    }
}

fn tt(t: Timestamp) -> ferrosim_telemetry::Timestamp {
    ferrosim_telemetry::Timestamp(t.millis())
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed.
    Pass,
    /// A check failed.
    Fail,
    /// Too few samples so far.
    Insufficient,
}

/// One measured check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// The metric (`data_path_success`).
    pub metric: String,
    /// The wave's value (`None`: no data).
    pub wave: Option<f64>,
    /// The untouched devices' value.
    pub control: Option<f64>,
    /// The bound it was held to (the stricter of threshold and control).
    pub bound: f64,
    /// Whether it passed (no data passes: nothing to hold against).
    pub passed: bool,
}

/// A gate's measurements and verdict (kept in the decision log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The checks.
    pub checks: Vec<GateCheck>,
    /// Registrations measured in the wave.
    pub registrations: u64,
    /// Data-path checks measured in the wave.
    pub data_path_checks: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// Judges a wave's metrics against the spec and the control group's.
pub fn evaluate(spec: &GateSpec, wave: &Metrics, control: &Metrics) -> GateReport {
    let mut checks = Vec::new();
    let mut rate = |metric: &str, w: Option<f64>, c: Option<f64>, min: f64| {
        // Held to the absolute threshold and to the control less the allowed
        // degradation; when the control itself is below the threshold (the
        // network is degraded for everyone, not by the change), only to the
        // control.
        let bound = match c {
            Some(c) if c < min => (c - spec.max_degradation).max(0.0),
            Some(c) => min.max(c - spec.max_degradation),
            None => min,
        };
        let passed = w.is_none_or(|w| w + 1e-12 >= bound);
        checks.push(GateCheck {
            metric: metric.to_owned(),
            wave: w,
            control: c,
            bound,
            passed,
        });
    };
    rate(
        "activation_success_within_60s",
        wave.activations.success_ratio,
        control.activations.success_ratio,
        spec.min_activation_success,
    );
    rate(
        "registration_success",
        wave.connectivity.registration_success_rate,
        control.connectivity.registration_success_rate,
        spec.min_registration_success,
    );
    rate(
        "data_path_success",
        wave.connectivity.data_path_success_rate,
        control.connectivity.data_path_success_rate,
        spec.min_data_path_success,
    );
    let mttr = wave.recovery.mttr_ms;
    checks.push(GateCheck {
        metric: "mttr_ms".into(),
        wave: mttr,
        control: control.recovery.mttr_ms,
        bound: spec.max_mttr.millis() as f64,
        passed: mttr.is_none_or(|m| m <= spec.max_mttr.millis() as f64),
    });
    let registrations = wave.connectivity.registration_attempts;
    let data_path_checks = wave.connectivity.data_path_checks;
    let verdict = if checks.iter().any(|c| !c.passed) {
        Verdict::Fail
    } else if registrations < spec.min_samples || data_path_checks < spec.min_samples {
        Verdict::Insufficient
    } else {
        Verdict::Pass
    };
    GateReport {
        checks,
        registrations,
        data_path_checks,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(reg: (u64, u64), data: (u64, u64)) -> Metrics {
        let mut m = Metrics::default();
        m.connectivity.registration_attempts = reg.1;
        m.connectivity.registrations_ok = reg.0;
        m.connectivity.registration_success_rate = Some(reg.0 as f64 / reg.1 as f64);
        m.connectivity.data_path_checks = data.1;
        m.connectivity.data_path_ok = data.0;
        m.connectivity.data_path_success_rate = Some(data.0 as f64 / data.1 as f64);
        m
    }

    #[test]
    fn a_wrong_apn_fails_on_data_path_only() {
        let spec = GateSpec::default();
        let r = evaluate(
            &spec,
            &metrics((10, 10), (0, 10)),
            &metrics((99, 100), (99, 100)),
        );
        assert_eq!(r.verdict, Verdict::Fail);
        let failed: Vec<_> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.metric.as_str())
            .collect();
        assert_eq!(failed, ["data_path_success"]);
    }

    #[test]
    fn healthy_wave_passes_and_a_degraded_network_is_not_blamed_on_the_change() {
        let spec = GateSpec::default();
        let r = evaluate(
            &spec,
            &metrics((10, 10), (10, 10)),
            &metrics((99, 100), (99, 100)),
        );
        assert_eq!(r.verdict, Verdict::Pass);
        // Everyone at 80 %: the wave at 80 % is as good as the control.
        let r = evaluate(
            &spec,
            &metrics((8, 10), (8, 10)),
            &metrics((80, 100), (80, 100)),
        );
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // The wave clearly worse than the control fails.
        let r = evaluate(
            &spec,
            &metrics((5, 10), (8, 10)),
            &metrics((80, 100), (80, 100)),
        );
        assert_eq!(r.verdict, Verdict::Fail);
        // Too few samples.
        let strict = GateSpec {
            min_samples: 20,
            ..spec
        };
        let r = evaluate(&strict, &metrics((10, 10), (10, 10)), &Metrics::default());
        assert_eq!(r.verdict, Verdict::Insufficient);
        assert!(
            GateSpec {
                max_degradation: 2.0,
                ..spec
            }
            .validate()
            .is_err()
        );
    }
}
