//! What devices report about their connectivity and profiles (from the
//! ingest endpoint, carrier webhooks mapped onto the same kinds, or the
//! simulator), stamped by the platform when received.

use ferrosim_ids::{Eid, Iccid};
use serde::{Deserialize, Serialize};

use crate::catalog::MccMnc;

/// One report of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReport {
    /// The device.
    pub device: Eid,
    /// What it reports.
    pub kind: ReportKind,
}

/// The network's answer to a registration attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Registration {
    /// Registered.
    Registered,
    /// Rejected with an EMM/5GMM cause.
    Rejected {
        /// The cause.
        cause: u16,
    },
    /// No answer.
    NoResponse,
}

/// Why the device's enabled profile changed without the fleet asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchCause {
    /// The device ran ExecuteFallbackMechanism (BF5D) itself.
    FallbackExecuted,
    /// The device ran ReturnFromFallback (BF5E).
    ReturnedFromFallback,
    /// The IPA rolled back an enable (ProfileRollback, BF58).
    RolledBack,
    /// Another reason (a local enable, a factory reset).
    Other,
}

/// What a device reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReportKind {
    /// A registration attempt.
    Registration {
        /// Its result.
        outcome: Registration,
        /// The network it registered on or tried, if known.
        #[serde(default)]
        plmn: Option<MccMnc>,
    },
    /// A data-path check.
    DataPath {
        /// Round-trip latency (ms).
        latency_ms: u32,
        /// Lost probes in parts per thousand (1000: nothing got through).
        loss_permille: u16,
    },
    /// A failed handover.
    HandoverFailure {
        /// Network or modem cause.
        cause: u16,
    },
    /// The enabled profile changed.
    ProfileSwitch {
        /// The profile now enabled.
        enabled: Iccid,
        /// Why.
        cause: SwitchCause,
    },
}

impl ReportKind {
    /// Checks the numbers' ranges (what serde cannot).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::DataPath { loss_permille, .. } if *loss_permille > 1000 => {
                Err(format!("loss_permille {loss_permille} is above 1000"))
            }
            _ => Ok(()),
        }
    }
}
