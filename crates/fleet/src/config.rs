//! The fleet's configuration as written in TOML: carriers with their
//! SM-DP+, profile types and APNs, SM-DP+ limits, groups, failover rules,
//! reconciler timing and outage detection.
//!
//! These are the plain serde types; [`crate::Catalog::from_config`] checks
//! them (every name referenced exists, numbers in range, APNs well formed)
//! and builds the interned form the decisions use. [`FleetConfig::from_toml`]
//! does both steps' first half: syntax and unknown fields.
//!
//! ```toml
//! [[carrier]]
//! name = "carrier-a"
//! mcc_mnc = ["310-410"]
//! smdp_address = "smdp.carrier-a.example"
//! es2_credentials = "vault:carrier-a/es2"
//! fallback_carriers = ["carrier-b"]
//! rate_limits = { es2_per_minute = 600, downloads_per_minute = 600, switches_per_minute = 2000 }
//!
//! [[carrier.apn]]
//! name = "a-iot"
//! apn = "iot.carrier-a.example"
//!
//! [[carrier.profile_type]]
//! name = "iot"
//! version = 1
//! apn = "a-iot"
//!
//! [[group]]
//! name = "meters"
//! rule = "default"
//! primary = { carrier = "carrier-a", profile_type = "iot", version = 1 }
//! fallback = { carrier = "carrier-b", profile_type = "iot", version = 1 }
//!
//! [[rule]]
//! name = "default"
//! registration_failures = { count = 3, window = "5m" }
//! ```

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::error::ConfigError;

/// The whole fleet configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Mobile network operators the fleet may use.
    #[serde(default, rename = "carrier")]
    pub carriers: Vec<CarrierConfig>,
    /// Limits per SM-DP+ address (several carriers may share one SM-DP+).
    #[serde(default, rename = "smdp")]
    pub smdps: Vec<SmdpConfig>,
    /// Device groups.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// Failover rules, referenced by groups by name.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// Tags devices may carry (at most 64).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Regions devices are in (for outage detection per carrier and region).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Retries and time-outs of actions.
    #[serde(default)]
    pub reconciler: ReconcilerConfig,
    /// Detecting a carrier outage from the failure rate in a region.
    #[serde(default)]
    pub outage_detection: OutageDetectionConfig,
}

impl FleetConfig {
    /// Parses TOML text (syntax, types and unknown fields; meaning is
    /// checked by [`crate::Catalog::from_config`]).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))
    }

    /// This configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Syntax(e.to_string()))
    }
}

/// One carrier (mobile network operator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// Unique name.
    pub name: String,
    /// Its networks, `MCC-MNC` (`310-410`) or the six/five digits.
    pub mcc_mnc: Vec<String>,
    /// Its SM-DP+ address (FQDN, optionally with a port), where ES2+ orders go.
    pub smdp_address: String,
    /// A reference to the ES2+ credentials (a secret store path, a file
    /// name): never the credentials themselves.
    pub es2_credentials: String,
    /// Whether the SM-DP+ is ferrosim's own (an instance of this platform)
    /// or another vendor's; informational for drivers.
    #[serde(default)]
    pub smdp_is_ferrosim: bool,
    /// Carriers whose profiles may serve as fallback for this carrier's
    /// devices, in order of preference.
    #[serde(default)]
    pub fallback_carriers: Vec<String>,
    /// Rate limits of this carrier.
    #[serde(default)]
    pub rate_limits: CarrierRateLimits,
    /// APN settings, referenced by profile types by name.
    #[serde(default, rename = "apn")]
    pub apns: Vec<ApnConfig>,
    /// Profile types (name and version) this carrier provides.
    #[serde(default, rename = "profile_type")]
    pub profile_types: Vec<ProfileTypeConfig>,
}

/// Rate limits of a carrier, per minute (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierRateLimits {
    /// ES2+ calls to its SM-DP+ per minute.
    #[serde(default = "default_es2_rate")]
    pub es2_per_minute: u32,
    /// Burst of ES2+ calls allowed above the steady rate.
    #[serde(default = "default_burst")]
    pub es2_burst: u32,
    /// Profile switches onto this carrier per minute (failovers and
    /// returns), on top of each rule's fraction.
    #[serde(default)]
    pub switches_per_minute: u32,
}

fn default_es2_rate() -> u32 {
    600
}

fn default_burst() -> u32 {
    10
}

impl Default for CarrierRateLimits {
    fn default() -> Self {
        Self {
            es2_per_minute: default_es2_rate(),
            es2_burst: default_burst(),
            switches_per_minute: 0,
        }
    }
}

/// Limits of one SM-DP+ (by address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmdpConfig {
    /// The address, as in `carrier.smdp_address`.
    pub address: String,
    /// Downloads (eIM download triggers pointing at it) per minute.
    pub downloads_per_minute: u32,
    /// Burst above the steady rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

/// APN settings delivered to a device's agent with a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnConfig {
    /// Name of this setting within the carrier.
    pub name: String,
    /// The access point name (3GPP TS 23.003 9.1).
    pub apn: String,
    /// PDP/PDN type.
    #[serde(default)]
    pub pdp_type: PdpType,
    /// Authentication.
    #[serde(default)]
    pub auth: ApnAuth,
    /// User name, if the APN needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Reference to the password (never the password).
    #[serde(default)]
    pub password_ref: Option<String>,
}

/// PDP/PDN type of an APN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PdpType {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
    /// Dual stack.
    #[default]
    Ipv4v6,
    /// Non-IP data delivery.
    NonIp,
}

/// Authentication on an APN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApnAuth {
    /// None.
    #[default]
    None,
    /// PAP.
    Pap,
    /// CHAP.
    Chap,
}

/// A profile type of a carrier, in one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTypeConfig {
    /// The ES2+ `profileType`.
    pub name: String,
    /// Version (a new version of the same type is a rollout).
    #[serde(default = "one")]
    pub version: u16,
    /// The APN setting (by name, of the same carrier) its profiles use.
    pub apn: String,
    /// The profile owner allows the fallback attribute on it (SGP.32
    /// fallbackAllowed).
    #[serde(default = "yes")]
    pub fallback_allowed: bool,
}

fn one() -> u16 {
    1
}

fn yes() -> bool {
    true
}

/// A reference to a profile type: carrier, type name and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRef {
    /// Carrier name.
    pub carrier: String,
    /// Profile type name.
    pub profile_type: String,
    /// Version.
    #[serde(default = "one")]
    pub version: u16,
}

/// A group of devices with the same desired profiles and failover rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Unique name.
    pub name: String,
    /// Failover rule (by name).
    pub rule: String,
    /// The profile devices use normally.
    pub primary: ProfileRef,
    /// The fallback staged on each device (its carrier must be among the
    /// primary carrier's `fallback_carriers`). Without one, a failover
    /// provisions a fallback profile afresh.
    #[serde(default)]
    pub fallback: Option<ProfileRef>,
}

/// How a device is switched to its fallback profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SwitchMethod {
    /// The eIM sends an enable PSMO with the rollback flag: the IPA returns
    /// to the previous profile by itself if the new one does not connect.
    #[default]
    EimEnableWithRollback,
    /// The device agent runs the SGP.32 ExecuteFallbackMechanism (and
    /// ReturnFromFallback to go back) on the eUICC.
    DeviceLocal,
}

/// `N` registration failures within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFailures {
    /// Failures that trigger a switch (1..=255).
    pub count: u8,
    /// Window in which they must fall, counted from the first of them.
    pub window: Span,
}

/// Data-path latency above a bound for several reports in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTrigger {
    /// Bound in milliseconds.
    pub above_ms: u32,
    /// Consecutive reports above it (1..=255).
    #[serde(default = "three")]
    pub consecutive: u8,
}

fn three() -> u8 {
    3
}

/// A group's failover rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name.
    pub name: String,
    /// Switch after this many registration failures in a window.
    #[serde(default)]
    pub registration_failures: Option<RegistrationFailures>,
    /// Switch after no working data path for this long (measured from the
    /// last successful check, on a failed one).
    #[serde(default)]
    pub no_data_path: Option<Span>,
    /// Switch when latency stays above a bound.
    #[serde(default)]
    pub latency: Option<LatencyTrigger>,
    /// Switch every device of a carrier and region in a declared or
    /// detected outage.
    #[serde(default = "yes")]
    pub on_carrier_outage: bool,
    /// Switch after the device has been registered only on networks that
    /// are not its profile's carrier's (roaming: its carrier's network is
    /// not available where it is) for this long, counted from its first
    /// such registration. Off when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roaming: Option<Span>,
    /// How to switch.
    #[serde(default)]
    pub method: SwitchMethod,
    /// Return to the primary once its carrier has been healthy (in the
    /// device's region) for this long.
    #[serde(default = "default_return_dwell")]
    pub return_dwell: Span,
    /// And the device has been on its fallback for at least this long.
    #[serde(default = "default_min_on_fallback")]
    pub min_on_fallback: Span,
    /// At most this many switches (either way) per device in any hour
    /// (1..=8).
    #[serde(default = "default_max_switches")]
    pub max_switches_per_hour: u8,
    /// At most this fraction of the target carrier's staged devices switch
    /// onto it per minute (0 < f <= 1).
    #[serde(default = "default_fraction")]
    pub max_fraction_per_minute: f64,
    /// Each eligible device waits a random time up to this before it takes
    /// its place in the switch queue.
    #[serde(default = "default_jitter")]
    pub jitter: Span,
    /// Stage a new fallback on a third pre-authorised carrier after a switch.
    #[serde(default = "yes")]
    pub restage_after_switch: bool,
}

fn default_return_dwell() -> Span {
    Span::mins(15)
}
fn default_min_on_fallback() -> Span {
    Span::mins(10)
}
fn default_max_switches() -> u8 {
    4
}
fn default_fraction() -> f64 {
    0.05
}
fn default_jitter() -> Span {
    Span::secs(30)
}

/// Retries and time-outs of the reconciler's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// First retry delay (the exponential backoff's base).
    #[serde(default = "default_retry_base")]
    pub retry_base: Span,
    /// Longest retry delay.
    #[serde(default = "default_retry_max")]
    pub retry_max: Span,
    /// ES2+ calls without an answer after this are issued again (same id).
    #[serde(default = "default_es2_timeout")]
    pub es2_timeout: Span,
    /// eIM packages and device-agent commands without a result after this
    /// are issued again (same id); devices may poll the eIM only daily.
    #[serde(default = "default_eim_timeout")]
    pub eim_timeout: Span,
}

fn default_retry_base() -> Span {
    Span::secs(5)
}
fn default_retry_max() -> Span {
    Span::mins(30)
}
fn default_es2_timeout() -> Span {
    Span::mins(2)
}
fn default_eim_timeout() -> Span {
    Span(26 * 3_600_000)
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            retry_base: default_retry_base(),
            retry_max: default_retry_max(),
            es2_timeout: default_es2_timeout(),
            eim_timeout: default_eim_timeout(),
        }
    }
}

/// When the failure rate of a carrier in a region declares an outage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageDetectionConfig {
    /// Whether detection is on (declared outages always count).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Sliding window of registration outcomes.
    #[serde(default = "default_detect_window")]
    pub window: Span,
    /// Outage when at least this fraction of attempts fail...
    #[serde(default = "default_outage_rate")]
    pub failure_rate: f64,
    /// ...over at least this many attempts in the window.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// Healthy again when the failure rate is at most this (hysteresis:
    /// below `failure_rate`) over at least `min_samples`.
    #[serde(default = "default_recover_rate")]
    pub recover_rate: f64,
    /// While an outage is detected and no device is left on the carrier to
    /// measure it, one device returns (with rollback) this often as a probe.
    #[serde(default = "default_probe_interval")]
    pub probe_interval: Span,
}

fn default_detect_window() -> Span {
    Span::mins(5)
}
fn default_outage_rate() -> f64 {
    0.5
}
fn default_min_samples() -> u32 {
    20
}
fn default_recover_rate() -> f64 {
    0.1
}
fn default_probe_interval() -> Span {
    Span::mins(5)
}

impl Default for OutageDetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: default_detect_window(),
            failure_rate: default_outage_rate(),
            min_samples: default_min_samples(),
            recover_rate: default_recover_rate(),
            probe_interval: default_probe_interval(),
        }
    }
}
