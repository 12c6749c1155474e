//! The decision log: every decision the fleet takes, with its reason and
//! the inputs it used, as data (serialisable, stored, shown to operators).
//!
//! A [`Decision`] cannot be built without a [`Reason`]; each reason carries
//! the numbers it was decided on (failures counted and the threshold, the
//! rates measured and the bounds), so an operator can check every decision
//! against its rule.

use ferrosim_ids::{Eid, Timestamp};
use serde::{Deserialize, Serialize};

use crate::action::{ActionId, Failure};
use crate::catalog::{CarrierId, ProfileTypeId, RegionId};
use crate::config::SwitchMethod;
use crate::gate::GateReport;

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Sequence number (increasing, unique within the fleet).
    pub seq: u64,
    /// When it was taken.
    pub at: Timestamp,
    /// The device it concerns, if one.
    #[serde(default)]
    pub device: Option<Eid>,
    /// The rollout it concerns, if one.
    #[serde(default)]
    pub rollout: Option<u32>,
    /// What was decided.
    pub what: What,
    /// Why, with the inputs.
    pub reason: Reason,
}

/// What was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum What {
    /// An action was issued.
    Issue {
        /// Its id.
        action: ActionId,
        /// Its command name.
        command: String,
    },
    /// An action is issued again with the same id.
    Reissue {
        /// Its id.
        action: ActionId,
    },
    /// The current step waits before trying again.
    Retry {
        /// Attempt number about to come.
        attempt: u8,
        /// Delay (ms).
        delay_ms: u64,
    },
    /// The device switches to another of its profiles.
    Switch {
        /// From.
        from: ProfileTypeId,
        /// To.
        to: ProfileTypeId,
        /// How.
        method: SwitchMethod,
        /// A failover (true) or a return to the primary (false).
        failover: bool,
    },
    /// A switch the device made itself (fallback mechanism, rollback) is
    /// taken as the new state.
    Adopt {
        /// The profile now in use.
        to: Option<ProfileTypeId>,
    },
    /// A switch that would have been due is not made.
    Hold,
    /// A further fallback is staged on a third carrier.
    Restage {
        /// The new staged profile.
        spare: ProfileTypeId,
    },
    /// A carrier is in outage in a region (or everywhere).
    OutageStart {
        /// Carrier.
        carrier: CarrierId,
        /// Region (`None`: every region).
        region: Option<RegionId>,
    },
    /// A carrier's outage is over.
    OutageEnd {
        /// Carrier.
        carrier: CarrierId,
        /// Region.
        region: Option<RegionId>,
    },
    /// A rollout wave started with these many devices.
    WaveStart {
        /// Wave (0-based).
        wave: u8,
        /// Devices in it.
        devices: u64,
    },
    /// A device is left out of a rollout.
    Skip,
    /// A wave's gate passed.
    GatePass {
        /// Wave.
        wave: u8,
    },
    /// A wave's gate failed: the rollout halts and the wave rolls back.
    GateFail {
        /// Wave.
        wave: u8,
    },
    /// A device's rollout change is undone.
    RollBack,
    /// The device's capabilities as its IPA reported them replace the
    /// ones in use (the first answer, or a later report: a firmware
    /// update).
    Capabilities {
        /// The capabilities now in use.
        capabilities: crate::device::Capabilities,
    },
    /// A rollout changed state on an operator's command or completed.
    RolloutState {
        /// New state name.
        state: String,
    },
}

/// What the desired state lacks (the reason for a reconciler action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A desired profile is not installed and has no order yet.
    Order,
    /// The order is reserved, not confirmed.
    Confirm,
    /// The order is released, the profile not downloaded.
    Download,
    /// The profile to use is installed but not enabled.
    Enable,
    /// The profile to use is installed but not enabled; the device's own
    /// fallback mechanism switches to it.
    ExecuteFallback,
    /// The device is on its fallback through the mechanism; it returns.
    ReturnFromFallback,
    /// The device agent lacks the APN of the enabled profile.
    Apn,
    /// The staged fallback lacks the fallback attribute.
    SetFallbackAttribute,
    /// A profile that should not be the fallback has the attribute.
    UnsetFallbackAttribute,
    /// A profile no longer desired is installed (and the enabled one works).
    Remove,
    /// The eUICC's profiles are not known for sure.
    Resync,
    /// The device's capabilities were not read through its IPA yet.
    Capabilities,
}

/// Why, with the inputs used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The desired state needs this step.
    Gap {
        /// What is missing.
        need: Need,
        /// The profile type concerned.
        profile_type: Option<ProfileTypeId>,
    },
    /// The action failed.
    ActionFailed {
        /// How.
        failure: Failure,
        /// Failed attempts so far.
        attempts: u8,
    },
    /// A driver answered a command with an outcome that does not fit it
    /// (a bare "done" for an order, a download or a profile list).
    UnexpectedOutcome {
        /// The command.
        command: String,
    },
    /// No result came within the time-out.
    Timeout {
        /// The time-out (ms).
        timeout_ms: u64,
    },
    /// The state was restored after a restart with the action in flight.
    Restart,
    /// Registration failures reached the rule's count within its window.
    RegistrationFailures {
        /// Failures counted.
        failures: u8,
        /// The rule's count.
        threshold: u8,
        /// Seconds since the first of them.
        within_s: u64,
        /// The rule's window (s).
        window_s: u64,
    },
    /// Registered only on networks that are not its carrier's for at
    /// least the rule's time (its carrier's network is not available where
    /// it is).
    Roaming {
        /// The network of its last registration.
        plmn: crate::catalog::MccMnc,
        /// The carrier that network belongs to, if the catalog has it.
        network_carrier: Option<CarrierId>,
        /// The carrier of the profile it uses.
        carrier: CarrierId,
        /// Seconds since its first registration away from home.
        for_s: u64,
        /// The rule's time (s).
        bound_s: u64,
    },
    /// No working data path for at least the rule's time.
    NoDataPath {
        /// Seconds since the last successful check.
        since_ok_s: u64,
        /// The rule's bound (s).
        bound_s: u64,
    },
    /// Latency stayed above the bound.
    Latency {
        /// The last latency (ms).
        latency_ms: u32,
        /// The rule's bound.
        bound_ms: u32,
        /// Reports above it in a row.
        streak: u8,
    },
    /// The device's carrier is in outage in its region.
    CarrierOutage {
        /// Carrier.
        carrier: CarrierId,
        /// Declared by an operator (else detected).
        declared: bool,
    },
    /// The primary carrier is healthy again.
    PrimaryHealthy {
        /// Seconds it has been healthy in the region.
        healthy_for_s: u64,
        /// The rule's dwell (s).
        dwell_s: u64,
        /// Seconds the device has been on its fallback.
        on_fallback_s: u64,
        /// The rule's minimum (s).
        min_on_fallback_s: u64,
    },
    /// A probe return while an outage is detected but unmeasured.
    Probe {
        /// Seconds since the outage started.
        outage_for_s: u64,
    },
    /// A detected outage too thinly measured to be judged by its failure
    /// rate (fewer than `min_samples` outcomes in the window, every device
    /// of the region having left the carrier) ended: since the last probe
    /// went out, the carrier's registrations there all succeeded.
    ProbeSucceeded {
        /// Successful registrations since the last probe went out.
        registrations: u32,
        /// Outcomes in the detection window (fewer than `min_samples`).
        attempts: u32,
    },
    /// The device reported the switch.
    DeviceReport {
        /// `fallback_executed`, `returned_from_fallback`, `rolled_back`...
        event: String,
    },
    /// The device switched as often as its rule allows this hour.
    SwitchBudget {
        /// Switches in the last hour.
        switches_last_hour: u8,
        /// The rule's maximum.
        max: u8,
    },
    /// The device has no fallback to switch to; one is provisioned afresh.
    NoStagedFallback,
    /// The device is in a rollout wave under soak: the rollout's rollback,
    /// not a failover, is the remedy.
    InRolloutSoak {
        /// The rollout.
        rollout: u32,
    },
    /// An operator declared it.
    Operator,
    /// The failure rate of the carrier in the region.
    FailureRate {
        /// Failed registrations in the window.
        failures: u32,
        /// Attempts in the window.
        attempts: u32,
        /// The threshold crossed (outage) or met (recovery).
        threshold: f64,
    },
    /// A third carrier is pre-authorised for the primary.
    PreAuthorised {
        /// The carrier.
        carrier: CarrierId,
    },
    /// The rollout's wave plan.
    Plan {
        /// Cumulative percentage of the selection this wave reaches.
        cumulative_percent: u8,
        /// Devices eligible in the selection.
        eligible: u64,
    },
    /// The device fails a compatibility filter.
    Incompatible {
        /// Which (`firmware 1.2.0 < 2.0.0`).
        filter: String,
    },
    /// The gate's measurements.
    Gate {
        /// The measurements and the verdict.
        report: GateReport,
    },
    /// The rollout was halted or aborted; what it changed is undone.
    RolloutHalted {
        /// Halt (gate failed) or abort (operator).
        cause: String,
    },
}
