//! Failover rules, checked: when a device switches to its staged
//! fallback, how, when it returns, and how fast.

use crate::config::{LatencyTrigger, RegistrationFailures, RuleConfig, SwitchMethod};
use crate::duration::Span;
use crate::error::ConfigError;

/// Most switches per device per hour a rule may allow (the per-device
/// switch log has this many slots).
pub const MAX_SWITCHES_PER_HOUR: u8 = 8;

/// A validated failover rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Registration failures that trigger a switch.
    pub registration_failures: Option<RegistrationFailures>,
    /// Time without a working data path that triggers a switch.
    pub no_data_path: Option<Span>,
    /// Latency that triggers a switch.
    pub latency: Option<LatencyTrigger>,
    /// Declared or detected carrier outages trigger a switch.
    pub on_carrier_outage: bool,
    /// Registered only on other carriers' or unknown networks this long
    /// triggers a switch.
    pub roaming: Option<Span>,
    /// How devices switch.
    pub method: SwitchMethod,
    /// Primary carrier healthy this long before devices return.
    pub return_dwell: Span,
    /// Minimum time on the fallback before returning.
    pub min_on_fallback: Span,
    /// Switches per device in any hour.
    pub max_switches_per_hour: u8,
    /// Fraction of the target carrier's staged devices per minute, in
    /// parts per million.
    pub fraction_ppm: u32,
    /// Random delay before a device joins the switch queue.
    pub jitter: Span,
    /// Stage a fallback on a third carrier after a switch.
    pub restage_after_switch: bool,
}

impl Rule {
    /// Checks a rule's configuration.
    pub fn from_config(r: &RuleConfig) -> Result<Self, ConfigError> {
        let item = format!("rule {:?}", r.name);
        if let Some(rf) = r.registration_failures
            && (rf.count == 0 || rf.window.millis() == 0)
        {
            return Err(ConfigError::invalid(
                &item,
                "registration_failures",
                "count and window must be above 0",
            ));
        }
        if r.no_data_path.is_some_and(|s| s.millis() == 0) {
            return Err(ConfigError::invalid(
                &item,
                "no_data_path",
                "must be above 0",
            ));
        }
        if let Some(l) = r.latency
            && (l.above_ms == 0 || l.consecutive == 0)
        {
            return Err(ConfigError::invalid(
                &item,
                "latency",
                "above_ms and consecutive must be above 0",
            ));
        }
        if r.roaming.is_some_and(|s| s.millis() == 0) {
            return Err(ConfigError::invalid(&item, "roaming", "must be above 0"));
        }
        if r.registration_failures.is_none()
            && r.no_data_path.is_none()
            && r.roaming.is_none()
            && r.latency.is_none()
            && !r.on_carrier_outage
        {
            return Err(ConfigError::invalid(
                &item,
                "triggers",
                "at least one trigger is needed",
            ));
        }
        if !(1..=MAX_SWITCHES_PER_HOUR).contains(&r.max_switches_per_hour) {
            return Err(ConfigError::invalid(
                &item,
                "max_switches_per_hour",
                format!("must be 1..={MAX_SWITCHES_PER_HOUR}"),
            ));
        }
        if !(r.max_fraction_per_minute > 0.0 && r.max_fraction_per_minute <= 1.0) {
            return Err(ConfigError::invalid(
                &item,
                "max_fraction_per_minute",
                "must be in (0, 1]",
            ));
        }
        // Hysteresis: two switches of a device are never closer than the
        // shorter of the dwell times.
        if r.return_dwell.millis() == 0 || r.min_on_fallback.millis() == 0 {
            return Err(ConfigError::invalid(
                &item,
                "return_dwell",
                "return_dwell and min_on_fallback must be above 0",
            ));
        }
        // Rounded to whole ppm; at least 1.
        let ppm = (r.max_fraction_per_minute * 1_000_000.0)
            .round()
            .clamp(1.0, 1_000_000.0) as u32;
        Ok(Self {
            name: r.name.clone(),
            registration_failures: r.registration_failures,
            no_data_path: r.no_data_path,
            latency: r.latency,
            on_carrier_outage: r.on_carrier_outage,
            roaming: r.roaming,
            method: r.method,
            return_dwell: r.return_dwell,
            min_on_fallback: r.min_on_fallback,
            max_switches_per_hour: r.max_switches_per_hour,
            fraction_ppm: ppm,
            jitter: r.jitter,
            restage_after_switch: r.restage_after_switch,
        })
    }

    /// Switches per minute allowed onto a carrier with `staged` devices
    /// staged on it: the rule's fraction, at least one.
    pub fn switches_per_minute(&self, staged: u64) -> u32 {
        let n = (u128::from(staged) * u128::from(self.fraction_ppm)).div_ceil(1_000_000);
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}
