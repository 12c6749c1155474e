//! Service level objectives: declared in OpenSLO v1 YAML, turned into
//! Prometheus recording rules and multiwindow, multi-burn-rate alerts.
//!
//! The generated rules use the metric and label names of Sloth
//! (`slo:sli_error:ratio_rate5m`, `slo:objective:ratio`,
//! `slo:period_error_budget_remaining:ratio`, labels `sloth_id`,
//! `sloth_service`, `sloth_slo`, `sloth_window`, `sloth_severity`), so
//! dashboards made for Sloth's output work on ferrosim's, and ours
//! (`deploy/grafana/ferrosim.json`) works on theirs.
//!
//! Alerts follow the Google SRE workbook for a 30-day window: **page** when
//! the error budget burns 14.4 times too fast over both 1 h and 5 min, or 6
//! times over both 6 h and 30 min; **ticket** when it burns at 1 times over
//! both 3 d and 6 h. The short window of each pair makes an alert stop soon
//! after the burn stops.

mod openslo;
mod rules;

pub use openslo::{export_openslo, parse_openslo};
pub use rules::{BurnAlert, PAGE, TICKET, WINDOWS, generate_rules};

/// The SLOs ferrosim ships (`deploy/slo/ferrosim.yaml`).
pub const DEFAULT_SLOS: &str = include_str!("../../../../deploy/slo/ferrosim.yaml");

/// Why an SLO file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    /// Not YAML, or not the shape of an OpenSLO document.
    #[error("not an OpenSLO v1 document: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A document of another `apiVersion`.
    #[error("unsupported apiVersion {0:?} (expected openslo/v1)")]
    ApiVersion(String),
    /// A document kind this generator does not use.
    #[error("unsupported kind {0:?} (SLO, SLI and Service are read)")]
    Kind(String),
    /// A field is missing or out of its domain.
    #[error("SLO {slo:?}: {problem}")]
    Invalid {
        /// The SLO's name.
        slo: String,
        /// What is wrong.
        problem: String,
    },
    /// No SLO in the file.
    #[error("the file declares no SLO")]
    Empty,
}

/// One SLO, normalised: an error-ratio indicator over a rolling window.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Name (`metadata.name`), a DNS label: `[a-z0-9-]`.
    pub name: String,
    /// Service it belongs to.
    pub service: String,
    /// Human description.
    pub description: String,
    /// Target ratio of good events, e.g. 0.99.
    pub objective: f64,
    /// Rolling window in days (OpenSLO `timeWindow`), 30 for the burn rates
    /// above.
    pub window_days: u32,
    /// The indicator.
    pub indicator: Indicator,
}

/// A ratio indicator: PromQL with `{{.window}}` where the range goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// Name of the indicator (`indicator.metadata.name`).
    pub name: String,
    /// Either the bad events or the good events.
    pub counted: Counted,
    /// All events.
    pub total: String,
}

/// Whether the indicator counts bad or good events.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    /// Query of bad events.
    Bad(String),
    /// Query of good events.
    Good(String),
}

impl Slo {
    /// Sloth's `sloth_id`: `service-name`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.service, self.name)
    }

    /// The error ratio over `window` (e.g. `5m`) as PromQL.
    pub fn error_ratio_expr(&self, window: &str) -> String {
        let w = |q: &str| q.replace("{{.window}}", window);
        let total = w(&self.indicator.total);
        match &self.indicator.counted {
            Counted::Bad(bad) => format!("({})\n/\n({})", w(bad), total),
            Counted::Good(good) => format!("1 - (({})\n/\n({}))", w(good), total),
        }
    }

    fn check(&self) -> Result<(), SloError> {
        let bad = |problem: &str| SloError::Invalid {
            slo: self.name.clone(),
            problem: problem.to_owned(),
        };
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !dns(&self.name) {
            return Err(bad("metadata.name must be 1..=63 of [a-z0-9-]"));
        }
        if !dns(&self.service) {
            return Err(bad("spec.service must be 1..=63 of [a-z0-9-]"));
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err(bad("objective target must be strictly between 0 and 1"));
        }
        if self.window_days == 0 || self.window_days > 365 {
            return Err(bad("timeWindow must be 1d..=365d"));
        }
        let q = match &self.indicator.counted {
            Counted::Bad(q) | Counted::Good(q) => q,
        };
        for query in [q, &self.indicator.total] {
            if !query.contains("{{.window}}") {
                return Err(bad("each query needs {{.window}} where the range goes"));
            }
            if query.trim().is_empty() || query.contains('\0') {
                return Err(bad("empty query"));
            }
        }
        Ok(())
    }
}
